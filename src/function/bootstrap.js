// vpclab's Node.js runtime client: a small stand-in for AWS's aws-lambda-ric.
//
// The daemon starts this file with the Lambda Runtime API on file descriptor 0 (a Unix
// socket, not TCP: the function runs in its own network namespace and has no network).
// It loads the handler named by _HANDLER ("file.function"), then loops: fetch the next
// event, call the handler (async, or with a callback), post the result or the error.
// console.* lines carry the timestamp, request id and level as on AWS. A line starting
// with \x1e tells the daemon that an invocation's output is complete.
'use strict';
const net = require('net');
const path = require('path');
const fs = require('fs');
const url = require('url');
const util = require('util');

const API = '/2018-06-01/runtime';
const sock = new net.Socket({ fd: 0, readable: true, writable: true });
let buf = Buffer.alloc(0);
const waiters = [];
let currentId = 'undefined';

function parse() {
  const i = buf.indexOf('\r\n\r\n');
  if (i < 0) return null;
  const lines = buf.subarray(0, i).toString('latin1').split('\r\n');
  const status = parseInt(lines[0].split(' ')[1], 10);
  const headers = {};
  for (const l of lines.slice(1)) {
    const j = l.indexOf(':');
    headers[l.slice(0, j).trim().toLowerCase()] = l.slice(j + 1).trim();
  }
  const n = parseInt(headers['content-length'] || '0', 10);
  if (buf.length < i + 4 + n) return null;
  const body = buf.subarray(i + 4, i + 4 + n);
  buf = buf.subarray(i + 4 + n);
  return { status, headers, body };
}

function pump() {
  while (waiters.length) {
    const r = parse();
    if (!r) return;
    waiters.shift()(r);
  }
}

sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  pump();
});
sock.on('close', () => process.exit(0));
sock.on('error', () => process.exit(1));

function call(method, p, body = Buffer.alloc(0), headers = {}) {
  return new Promise((resolve) => {
    waiters.push(resolve);
    let head = `${method} ${p} HTTP/1.1\r\nHost: runtime\r\nContent-Length: ${body.length}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    sock.write(Buffer.concat([Buffer.from(head + '\r\n'), body]));
  });
}

function emit(level) {
  return (...args) => {
    const text = util.format(...args).replace(/\n/g, '\r');
    process.stdout.write(`${new Date().toISOString()}\t${currentId}\t${level}\t${text}\n`);
  };
}
console.log = emit('INFO');
console.info = emit('INFO');
console.warn = emit('WARN');
console.error = emit('ERROR');
console.debug = emit('DEBUG');
console.trace = emit('TRACE');

function done(id) {
  process.stdout.write(`\x1e${id}\n`);
}

function errorBody(e) {
  if (e instanceof Error) {
    return { errorType: e.name, errorMessage: e.message, trace: String(e.stack || '').split('\n') };
  }
  return { errorType: typeof e, errorMessage: String(e), trace: [] };
}

async function initError(kind, message) {
  const body = { errorType: kind, errorMessage: message, trace: [] };
  console.error(`${kind}: ${message}`);
  done('init');
  await call('POST', `${API}/init/error`, Buffer.from(JSON.stringify(body)),
    { 'Lambda-Runtime-Function-Error-Type': kind });
  process.exit(1);
}

async function load() {
  const handler = process.env._HANDLER || '';
  const root = process.env.LAMBDA_TASK_ROOT || '.';
  const dot = handler.lastIndexOf('.');
  if (dot < 0) {
    await initError('Runtime.MalformedHandlerName', `Bad handler ${handler}`);
  }
  const modname = handler.slice(0, dot);
  const fname = handler.slice(dot + 1);
  const base = path.resolve(root, modname);
  let mod;
  try {
    if (fs.existsSync(base + '.mjs')) {
      mod = await import(url.pathToFileURL(base + '.mjs').href);
    } else if (fs.existsSync(base + '.cjs')) {
      mod = require(base + '.cjs');
    } else if (fs.existsSync(base + '.js')) {
      try {
        mod = require(base + '.js');
      } catch (e) {
        if (e && e.code === 'ERR_REQUIRE_ESM') mod = await import(url.pathToFileURL(base + '.js').href);
        else throw e;
      }
    } else {
      await initError('Runtime.ImportModuleError',
        `Error: Cannot find module '${modname}'\nRequire stack:\n- /var/runtime/index.mjs`);
    }
  } catch (e) {
    const kind = e instanceof SyntaxError ? 'Runtime.UserCodeSyntaxError' : 'Runtime.ImportModuleError';
    await initError(kind, `${e.name}: ${e.message}`);
  }
  const fn = mod && (mod[fname] || (mod.default && mod.default[fname]));
  if (typeof fn !== 'function') {
    await initError('Runtime.HandlerNotFound', `${modname}.${fname} is undefined or not exported`);
  }
  return fn;
}

async function main() {
  const fn = await load();
  for (;;) {
    const next = await call('GET', `${API}/invocation/next`);
    const id = next.headers['lambda-runtime-aws-request-id'] || '';
    const deadline = parseInt(next.headers['lambda-runtime-deadline-ms'] || '0', 10);
    currentId = id;
    const context = {
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: id,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    let result;
    let failed = null;
    try {
      const event = next.body.length ? JSON.parse(next.body.toString('utf8')) : null;
      if (fn.length >= 3) {
        result = await new Promise((resolve, reject) => {
          const r = fn(event, context, (err, value) => (err ? reject(err) : resolve(value)));
          if (r && typeof r.then === 'function') r.then(resolve, reject);
        });
      } else {
        result = await fn(event, context);
      }
    } catch (e) {
      failed = errorBody(e);
    }
    if (failed) {
      console.error('Invoke Error \t' + JSON.stringify(failed));
      done(id);
      await call('POST', `${API}/invocation/${id}/error`, Buffer.from(JSON.stringify(failed)),
        { 'Lambda-Runtime-Function-Error-Type': 'Unhandled' });
    } else {
      const out = result === undefined ? 'null' : JSON.stringify(result);
      done(id);
      await call('POST', `${API}/invocation/${id}/response`, Buffer.from(out));
    }
  }
}

main();
