// The transport ceiling: a bare uWebSockets.js relay with no ILP logic. It answers any auth
// message, passes alice's frames to bob and bob's answers to alice unchanged (request ids are
// kept). Run as a child process by the bench, in the place of the node.

import { loadUws } from '../src/io/uws'

const uws = loadUws()
const port = Number(process.env.PORT ?? 0)
const sockets: Record<string, import('uWebSockets.js').WebSocket<{ name: string; authed: boolean }>> = {}

uws.App().ws<{ name: string; authed: boolean }>('/*', {
  compression: 0,
  maxPayloadLength: 65536,
  upgrade: (res, req, context) => {
    res.upgrade({ name: '', authed: false }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context)
  },
  message: (ws, message) => {
    const data = ws.getUserData()
    const bytes = new Uint8Array(message)
    if (!data.authed) {
      // The username entry of the generator's auth message: 'alice' or 'bob' (see generator/btp_socket.ts).
      data.name = Buffer.from(bytes).includes(Buffer.from('alice')) ? 'alice' : 'bob'
      data.authed = true
      sockets[data.name] = ws
      ws.send(Buffer.from([1, bytes[1], bytes[2], bytes[3], bytes[4], 2, 1, 0]), true)
      return
    }
    const other = sockets[data.name === 'alice' ? 'bob' : 'alice']
    other?.send(message, true)
  },
}).listen('127.0.0.1', port, (socket) => {
  if (socket === false) throw new Error(`cannot listen on ${port}`)
  console.log(`ilp-node listening relay port=${uws.us_socket_local_port(socket as never)}`)
})
