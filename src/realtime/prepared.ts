// A frame encoded once and written to many sockets: the room fan-out.
//
// Written through spark.write, every delivery is encoded again for every socket: Primus
// stringifies it, engine.io prefixes its packet type and ws builds the WebSocket frame. A
// room message goes to every socket in the room unchanged, so it is encoded here once, as
// the JSON text Primus would send and as the finished WebSocket frame, and handed to each
// socket's engine.io connection. engine.io writes the frame as is on a WebSocket transport
// (its `wsPreEncodedFrame` send option) and encodes the text as usual on HTTP long-polling.
import type Primus from 'primus';
import { Sender } from 'ws';
import type { OutboundFrame } from '../chat/protocol.js';

export interface PreparedFrame {
  /** the frame as Primus's JSON parser writes it */
  readonly text: string;
  /** the whole WebSocket frame of the engine.io message packet holding `text`, one buffer */
  readonly wsFrame: readonly [Buffer];
}

/** engine.io's "message" packet type, the first character of a packet on the wire. */
const ENGINE_IO_MESSAGE = '4';

export function prepareFrame(frame: OutboundFrame): PreparedFrame {
  // Primus escapes these two: valid in JSON, line terminators to a JavaScript evaluator.
  const text = JSON.stringify(frame).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  // An unmasked server frame is [header, payload]; one buffer is one write to the socket.
  const parts = Sender.frame(Buffer.from(ENGINE_IO_MESSAGE + text), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
  return { text, wsFrame: [Buffer.concat(parts)] };
}

/** Primus's readyState of a spark whose connection has ended. */
const SPARK_CLOSED = 2;

/** Writes a prepared frame to one socket; it is ignored, as spark.write is, once the spark ended. */
export function writePrepared(spark: Primus.Spark, prepared: PreparedFrame): void {
  if (spark.readyState !== SPARK_CLOSED) spark.socket.write(prepared.text, { wsPreEncodedFrame: prepared.wsFrame });
}
