// The Jan-2018 ilp-plugin-btp, installed under an alias for the compatibility tests; it ships no types.
declare module 'ilp-plugin-btp-1.1.5' {
  class BtpPlugin {
    constructor(options: { server?: string; listener?: { port: number; secret: string } })
    connect(): Promise<void>
    disconnect(): Promise<void>
    isConnected(): boolean
    sendData(data: Buffer): Promise<Buffer>
    registerDataHandler(handler: (data: Buffer) => Promise<Buffer>): void
  }
  export = BtpPlugin
}
