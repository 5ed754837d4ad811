'use strict';
/*
 * A minimal NestJS TCP microservice with one `echo` message handler, for the
 * benchmarks. NODE_PATH must point at a NestJS node_modules (bench/run.py uses
 * tests/interop/nest.py's ensure_installed(12)). Env: HOST (127.0.0.1), PORT (0).
 * stdout: one line "LISTENING <port>". Stops on SIGTERM.
 */
require('reflect-metadata');
const { Module, Controller } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { MessagePattern, ServerTCP } = require('@nestjs/microservices');

class EchoController {
  echo(data) {
    return data;
  }
}
const P = EchoController.prototype;
const desc = Object.getOwnPropertyDescriptor(P, 'echo');
Object.defineProperty(P, 'echo', Reflect.decorate([MessagePattern('echo')], P, 'echo', desc) || desc);
Reflect.decorate([Controller()], EchoController);

class AppModule {}
Reflect.decorate([Module({ controllers: [EchoController] })], AppModule);

async function main() {
  const server = new ServerTCP({ host: process.env.HOST || '127.0.0.1', port: Number(process.env.PORT || 0) });
  server.port = Number(process.env.PORT || 0); // 10.x turns 0 into 3000
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: ['error', 'warn'] });
  await app.listen();
  const net = typeof server.unwrap === 'function' ? server.unwrap() : server.server;
  process.stdout.write(`LISTENING ${net.address().port}\n`);
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  process.stderr.write(`bench server.js failed: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
