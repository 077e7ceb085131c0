// primus ships no types; this is the part of its API the app and its tests use.
declare module 'primus' {
  import type { EventEmitter } from 'node:events';
  import type { IncomingMessage, Server } from 'node:http';

  namespace Primus {
    /** engine.io's server Socket; `wsPreEncodedFrame` is a finished WebSocket frame it writes as is */
    interface EngineServerSocket {
      /** the transport it is on now ('polling', 'websocket') */
      readonly transport?: { readonly name: string };
      write(data: string, options?: { wsPreEncodedFrame?: readonly Buffer[] }): unknown;
    }
    /** engine.io-client's Socket, which a Primus client holds once it has opened */
    interface EngineClientSocket {
      readonly transport?: { readonly name: string };
      once(event: 'upgrade', fn: () => void): void;
    }
    interface Options {
      transformer?: string;
      parser?: string;
      pathname?: string;
      pingInterval?: number | false;
      maxLength?: number;
      compression?: boolean;
      transport?: Record<string, unknown>;
    }
    interface Spark extends EventEmitter {
      readonly id: string;
      readonly address: { ip: string; port: number };
      readonly headers: Record<string, string | undefined>;
      /** the HTTP request that opened it (the handshake) */
      readonly request: IncomingMessage;
      /** OPENING 1, CLOSED 2, OPEN 3 */
      readonly readyState: number;
      /** the transformer's own connection: the engine.io Socket (the part the app writes to) */
      readonly socket: EngineServerSocket;
      write(data: unknown): boolean;
      end(data?: unknown, options?: { reconnect?: boolean }): void;
    }
    interface ClientOptions {
      reconnect?: { min?: number; max?: number; retries?: number; factor?: number };
      strategy?: string | string[] | false;
      transport?: Record<string, unknown>;
      /** false keeps the client on HTTP long-polling */
      websockets?: boolean;
      manual?: boolean;
      timeout?: number;
      pingTimeout?: number;
    }
    /** The Node client, with the same interface as the browser's. */
    interface Client extends EventEmitter {
      readonly socket?: EngineClientSocket;
      write(data: unknown): boolean;
      end(): void;
      open(): void;
      readonly readyState: number;
    }
    type ClientConstructor = new (url: string, options?: ClientOptions) => Client;
  }

  class Primus extends EventEmitter {
    constructor(server: Server, options?: Primus.Options);
    static createSocket(options?: Primus.Options): Primus.ClientConstructor;
    readonly Socket: Primus.ClientConstructor;
    readonly connected: number;
    library(): string;
    /** removes a built-in middleware layer by name ('cors', 'primus.js', ...) */
    remove(name: string): this;
    /** runs for every HTTP request and upgrade under the pathname; an error refuses it */
    authorize(fn: (req: IncomingMessage, done: (err?: { statusCode: number; message: string }) => void) => void): this;
    forEach(fn: (spark: Primus.Spark) => void): void;
    destroy(options: { close?: boolean; reconnect?: boolean; timeout?: number }, fn?: (err?: Error) => void): this;
    on(event: 'connection' | 'disconnection', fn: (spark: Primus.Spark) => void): this;
    on(event: string, fn: (...args: unknown[]) => void): this;
  }
  export default Primus;
}
