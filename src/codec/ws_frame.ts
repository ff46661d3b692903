// RFC 6455 §5.2 base framing, as a WebSocket client reads a server's frames (unmasked): the
// header is 2 bytes, then a 16-bit length when the 7-bit length is 126, a 64-bit one when 127.
// Read in place: a frame is handed on as its opcode, offset and length, never as an object, so
// that a reader allocates nothing per frame. The node's own sockets are framed by
// uWebSockets.js; the test and bench clients read frames with this.

/** What a reader does with one whole frame: its payload is `buf[at, at + length)`. */
export type FrameHandler = (opcode: number, buf: Buffer, at: number, length: number) => void

/** The header's length of the frame at `pos` (2, 4 or 10), or 0 while `buf` holds only part of it. */
export function frameHeaderLength(buf: Uint8Array, pos: number): number {
  if (buf.length - pos < 2) return 0
  const short = buf[pos + 1] & 0x7f
  const header = short === 126 ? 4 : short === 127 ? 10 : 2
  return buf.length - pos < header ? 0 : header
}

/** The payload's length of the frame at `pos`, whose header `buf` holds whole. */
export function framePayloadLength(buf: Buffer, pos: number): number {
  const short = buf[pos + 1] & 0x7f
  if (short === 126) return buf.readUInt16BE(pos + 2)
  if (short === 127) return Number(buf.readBigUInt64BE(pos + 2))
  return short
}

/** Hands each whole frame of `buf` to `onFrame`, in order; the bytes read (a partial frame's are not). */
export function readFrames(buf: Buffer, onFrame: FrameHandler): number {
  let pos = 0
  for (;;) {
    const header = frameHeaderLength(buf, pos)
    if (header === 0) return pos
    const length = framePayloadLength(buf, pos)
    const end = pos + header + length
    if (end > buf.length) return pos
    onFrame(buf[pos] & 0x0f, buf, pos + header, length)
    pos = end
  }
}
