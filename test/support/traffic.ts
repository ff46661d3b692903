// Traffic of known outcomes through a node, for tests that count what the node counted: packets
// bob fulfills, packets to an address no route reaches (F02 from the node), and packets bob
// rejects (F99 from the next hop).

import assert from 'node:assert/strict'
import type BtpPlugin from 'ilp-plugin-btp'
import { asFulfill, asReject, fulfillmentPair, IlpPacket, NODE_ADDRESS, prepare } from './helpers'

export interface TrafficPlan {
  fulfilled: number
  unroutable: number
  rejected: number
}

/** Each outcome's amount per packet, in base units. */
export interface TrafficAmounts {
  fulfilled: string
  unroutable: string
  rejected: string
}

/** Sends the plan from alice to bob through the node, in that order, checking each answer. */
export async function sendKnownTraffic(alice: BtpPlugin, bob: BtpPlugin, plan: TrafficPlan, amounts: TrafficAmounts = { fulfilled: '3', unroutable: '5', rejected: '7' }): Promise<void> {
  const { fulfillment, condition } = fulfillmentPair()
  let reject = false
  bob.registerDataHandler(async () => reject
    ? IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.bob`, message: 'no', data: Buffer.alloc(0) })
    : IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
  for (let i = 0; i < plan.fulfilled; i++) asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: amounts.fulfilled, executionCondition: condition })))
  for (let i = 0; i < plan.unroutable; i++) assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.nowhere', amount: amounts.unroutable }))).code, 'F02')
  reject = true
  for (let i = 0; i < plan.rejected; i++) assert.equal(asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: amounts.rejected }))).code, 'F99')
}
