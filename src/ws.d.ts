// @types/ws leaves out the Sender class that the ws package exports; this is the part of it
// the app uses (src/realtime/prepared.ts).
import 'ws';

declare module 'ws' {
  /** Frames `data` as one WebSocket frame: [header, payload], or one buffer when merged. */
  export class Sender {
    static frame(
      data: Buffer | string,
      options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean },
    ): Buffer[];
  }
}
