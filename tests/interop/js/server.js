'use strict';
/*
 * A real NestJS TCP microservice for sansio-tcpmsg interop tests.
 *
 * Plain CommonJS, no build step. Works with @nestjs/microservices 10.4.x, 11.x
 * and 12.1.x: modules are resolved through NODE_PATH (set it to
 * <cache>/nestNN/node_modules). 12.x ships ESM only; Node >= 20.19 loads it
 * through require() (a one-time ExperimentalWarning may go to stderr).
 *
 * Env:
 *   PORT (0 = pick a free port), HOST (default 127.0.0.1)
 *   TLS_CERT, TLS_KEY, TLS_CA   PEM paths; TLS_CA also turns on mutual TLS
 *   MAX_BUFFER_SIZE, INCOMPLETE_MESSAGE_TIMEOUT, MAX_SEND_BUFFER_SIZE
 *                               framing limits (ignored by 10.x, which has none)
 *   RETRY_ATTEMPTS, RETRY_DELAY optional ServerTCP options
 *   ENVELOPE                    any value: a custom serializer/deserializer pair,
 *                               every packet wrapped as {"v": 1, "packet": ...}
 *
 * stdout carries exactly one line: "LISTENING <port>". Nest's own logging goes
 * to stderr.
 */
require('reflect-metadata');
const fs = require('fs');
const { Module, Controller } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const ms = require('@nestjs/microservices');
const { MessagePattern, EventPattern, RpcException, ServerTCP, Payload, Ctx } = ms;
const { EMPTY, from, timer, of } = require('rxjs');
const { take } = require('rxjs/operators');

const path = require('path');
// 12.x has an "exports" map without ./package.json: read it from disk
const MS_VERSION = JSON.parse(
  fs.readFileSync(
    path.join(path.dirname(require.resolve('@nestjs/microservices')), 'package.json'),
    'utf8',
  ),
).version;
const MAJOR = Number(MS_VERSION.split('.')[0]);

function toStderr(level) {
  return (...args) => {
    const parts = args.map(a =>
      a instanceof Error ? a.stack || String(a) : typeof a === 'string' ? a : safeJson(a),
    );
    process.stderr.write(`[nest ${level}] ${parts.join(' ')}\n`);
  };
}
function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}
const stderrLogger = {
  log: toStderr('log'),
  error: toStderr('error'),
  warn: toStderr('warn'),
  debug: toStderr('debug'),
  verbose: toStderr('verbose'),
  fatal: toStderr('fatal'),
};

// ---------------------------------------------------------------- handlers
const events = [];

class AppController {
  echo(data) {
    return data;
  }
  sum(data) {
    return (data || []).reduce((a, b) => a + b, 0);
  }
  nested() {
    return 'nested';
  }
  fortyTwo() {
    return 'forty-two';
  }
  unicode(data) {
    return data;
  }
  stream(data) {
    const count = Number((data && data.count) || 0);
    const gap = data ? data.gap_ms : undefined;
    if (count <= 0) return EMPTY;
    if (gap === undefined || gap === null) {
      // synchronous emission: all values in one tick
      return from(Array.from({ length: count }, (_, i) => i));
    }
    return timer(0, Number(gap)).pipe(take(count));
  }
  streamEmpty() {
    return EMPTY;
  }
  errorObject() {
    throw new RpcException({ code: 42, reason: 'bad' });
  }
  errorString() {
    throw new RpcException('text error');
  }
  errorPlain() {
    throw new Error('secret detail');
  }
  big(data) {
    return 'x'.repeat(Number((data && data.size) || 0));
  }
  metadata(data, ctx) {
    // 12.x: TcpContext#getMetadata() returns packet.metadata (args[2]).
    // 10.x/11.x TcpContext has no metadata: return null.
    if (ctx && typeof ctx.getMetadata === 'function') {
      const m = ctx.getMetadata();
      return m === undefined ? null : m;
    }
    return null;
  }
  noteA(data) {
    events.push(['noteA', data]);
  }
  noteB(data) {
    events.push(['noteB', data]);
  }
  objEvent(data) {
    events.push(['objEvent', data]);
  }
  eventsGet() {
    return events;
  }
  slow(data) {
    const msDelay = Number((data && data.ms) || 0);
    return new Promise(resolve => setTimeout(() => resolve(data), msDelay));
  }
  returnsUndefined() {
    return undefined;
  }
  pattern(data, ctx) {
    // returns the pattern string as the server saw it (TcpContext#getPattern)
    return ctx && typeof ctx.getPattern === 'function' ? ctx.getPattern() : null;
  }
}

const P = AppController.prototype;
function decorate(key, ...decorators) {
  const desc = Object.getOwnPropertyDescriptor(P, key);
  const out = Reflect.decorate(decorators, P, key, desc);
  Object.defineProperty(P, key, out || desc);
}
decorate('echo', MessagePattern('echo'));
decorate('sum', MessagePattern({ cmd: 'sum' }));
decorate('nested', MessagePattern({ a: { b: 1 }, z: 'x' }));
decorate('fortyTwo', MessagePattern(42));
decorate('unicode', MessagePattern('é中😀\u2028'));
decorate('stream', MessagePattern('stream'));
decorate('streamEmpty', MessagePattern('stream.empty'));
decorate('errorObject', MessagePattern('error.object'));
decorate('errorString', MessagePattern('error.string'));
decorate('errorPlain', MessagePattern('error.plain'));
decorate('big', MessagePattern('big'));
// Without parameter decorators Nest passes only the payload (its default call
// metadata is @Payload() at index 0), so the context needs @Ctx() explicitly.
function withCtx(key) {
  Payload()(P, key, 0);
  Ctx()(P, key, 1);
}
withCtx('metadata');
withCtx('pattern');
decorate('metadata', MessagePattern('metadata'));
decorate('noteA', EventPattern('note'));
decorate('noteB', EventPattern('note'));
decorate('objEvent', EventPattern({ evt: 'obj', k: 1 }));
decorate('eventsGet', MessagePattern('events.get'));
decorate('slow', MessagePattern('slow'));
decorate('returnsUndefined', MessagePattern('undefined'));
decorate('pattern', MessagePattern('pattern'));
Reflect.decorate([Controller()], AppController);

class AppModule {}
Reflect.decorate([Module({ controllers: [AppController] })], AppModule);

// ---------------------------------------------------------------- options
function envInt(name) {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : Number(v);
}

// ENVELOPE=1: a custom serializer pair, packet-level (NestJS's `serializer` /
// `deserializer` options): every packet travels as {"v": 1, "packet": <packet>}.
function envelope() {
  return {
    serializer: { serialize: packet => ({ v: 1, packet }) },
    deserializer: {
      deserialize: value => {
        if (!value || value.v !== 1) throw new Error(`not an envelope: ${JSON.stringify(value)}`);
        return value.packet;
      },
    },
  };
}

function buildOptions() {
  const port = envInt('PORT') ?? 0;
  const options = { host: process.env.HOST || '127.0.0.1', port };
  if (process.env.TLS_CERT && process.env.TLS_KEY) {
    const tlsOptions = {
      cert: fs.readFileSync(process.env.TLS_CERT),
      key: fs.readFileSync(process.env.TLS_KEY),
    };
    if (process.env.TLS_CA) {
      tlsOptions.ca = fs.readFileSync(process.env.TLS_CA);
      tlsOptions.requestCert = true;
      tlsOptions.rejectUnauthorized = true;
    }
    options.tlsOptions = tlsOptions;
  }
  if (MAJOR >= 11) {
    for (const [env, key] of [
      ['MAX_BUFFER_SIZE', 'maxBufferSize'],
      ['INCOMPLETE_MESSAGE_TIMEOUT', 'incompleteMessageTimeout'],
      ['MAX_SEND_BUFFER_SIZE', 'maxSendBufferSize'],
    ]) {
      const v = envInt(env);
      if (v !== undefined) options[key] = v;
    }
  }
  if (process.env.ENVELOPE) Object.assign(options, envelope());
  const ra = envInt('RETRY_ATTEMPTS');
  if (ra !== undefined) options.retryAttempts = ra;
  const rd = envInt('RETRY_DELAY');
  if (rd !== undefined) options.retryDelay = rd;
  return options;
}

async function main() {
  const options = buildOptions();
  const server = new ServerTCP(options);
  // 10.x does `getOptionsProp(options, 'port') || 3000`, so port 0 would
  // become 3000; listen() reads this.port, so set it after construction.
  server.port = options.port;
  const app = await NestFactory.createMicroservice(AppModule, {
    strategy: server,
    logger: stderrLogger,
  });
  await app.listen();
  const netServer = typeof server.unwrap === 'function' ? server.unwrap() : server.server;
  const addr = netServer.address();
  process.stdout.write(`LISTENING ${addr.port}\n`);

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    try {
      // 10.x ServerTCP#close does not destroy open sockets; do it ourselves
      await Promise.race([app.close(), new Promise(r => setTimeout(r, 3000))]);
    } catch (e) {
      process.stderr.write(`close error: ${e && e.stack}\n`);
    }
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

process.on('unhandledRejection', err => {
  process.stderr.write(`unhandledRejection: ${(err && err.stack) || safeJson(err)}\n`);
});

main().catch(err => {
  process.stderr.write(`server.js failed: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
