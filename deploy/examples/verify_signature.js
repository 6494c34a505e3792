#!/usr/bin/env node
// Verify a Freya webhook delivery or tool request (Node.js standard library only).
//
// Webhook deliveries and agent tool requests from Freya carry
//
//     Freya-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// Copy `verify` into your server and call it with the raw request body (a Buffer, before any
// JSON parsing) and the header's value. Run as a script to check a captured request:
//
//     node verify_signature.js --secret SECRET --signature 't=...,v1=...' --body-file body.json
//
// Exit status 0 means the signature is valid, 1 that it is not (the reason is printed).
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const TOLERANCE_SECONDS = 300;

// Returns the request's timestamp, or throws an Error saying why the request is refused.
function verify(secret, header, body, now = Math.floor(Date.now() / 1000), tolerance = TOLERANCE_SECONDS) {
  if (!secret || secret.length === 0) throw new Error('empty secret');
  let timestamp = null;
  const signatures = [];
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    if (at < 0) throw new Error('malformed header');
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key === 't') {
      if (!/^[0-9]+$/.test(value)) throw new Error('malformed timestamp');
      timestamp = Number(value);
    } else if (key === 'v1') {
      signatures.push(value);
    }
  }
  if (timestamp === null || signatures.length === 0) throw new Error('malformed header');
  if (Math.abs(now - timestamp) > tolerance) {
    throw new Error(`timestamp is ${Math.abs(now - timestamp)} s away from now`);
  }
  const expected = crypto
    .createHmac('sha256', secret)
    .update(`${timestamp}.`)
    .update(body)
    .digest();
  const matches = signatures.some((hex) => {
    const given = Buffer.from(hex, 'hex');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
  if (!matches) throw new Error('signature does not match');
  return timestamp;
}

function main(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.secret || !args.signature || !args['body-file']) {
    console.error('usage: verify_signature.js --secret S --signature HEADER --body-file F [--now T]');
    return 2;
  }
  const body = fs.readFileSync(args['body-file']);
  try {
    const now = args.now === undefined ? undefined : Number(args.now);
    verify(args.secret, args.signature, body, now);
  } catch (e) {
    console.log(`rejected: ${e.message}`);
    return 1;
  }
  console.log('ok');
  return 0;
}

module.exports = { verify };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
