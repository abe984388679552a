// The little of JOSE the test provider needs, on node:crypto only: signing keys (RSA 2048, EC
// P-256) and their public JWKs, compact JWS (RS256, ES256, and the HS256/none tokens an attacker
// would send), verification against a JWKS, and the PKCE S256 transform.
import { createHash, createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const b64urlJson = (obj) => b64url(JSON.stringify(obj));
export const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url');

/** PKCE S256 (RFC 7636 4.2): BASE64URL(SHA256(ASCII(verifier))). */
export function s256(verifier) {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/**
 * A new signing key: alg 'RS256' (RSA 2048) or 'ES256' (P-256). Returns { kid, alg, privateKey,
 * publicKey, jwk } where jwk is the public JWK as a JWKS publishes it (n/e or crv/x/y, base64url).
 */
export function newSigningKey(alg, kid) {
  const { privateKey, publicKey } = alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  if (alg !== 'ES256' && alg !== 'RS256') throw new Error(`unsupported alg ${alg}`);
  const exported = publicKey.export({ format: 'jwk' });
  const jwk = alg === 'ES256'
    ? { kty: 'EC', kid, use: 'sig', alg, crv: exported.crv, x: exported.x, y: exported.y }
    : { kty: 'RSA', kid, use: 'sig', alg, n: exported.n, e: exported.e };
  return { kid, alg, privateKey, publicKey, jwk };
}

/**
 * A compact JWS over payload. key: a signing key from newSigningKey (its alg is used unless
 * header.alg says otherwise). header: extra or overriding header fields (kid defaults to the
 * key's). For the tokens a verifier must refuse: { alg: 'HS256', hmacSecret } signs with HMAC,
 * { alg: 'none' } has an empty signature.
 */
export function signJws(payload, { key, header = {}, hmacSecret } = {}) {
  const alg = header.alg ?? key.alg;
  const h = { alg, typ: 'JWT', ...(key ? { kid: key.kid } : {}), ...header };
  const input = `${b64urlJson(h)}.${b64urlJson(payload)}`;
  let sig;
  if (alg === 'RS256') sig = sign('sha256', Buffer.from(input), key.privateKey);
  // JWS wants ECDSA signatures as the raw 64 bytes r || s (RFC 7518 3.4), not DER.
  else if (alg === 'ES256') sig = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'HS256') sig = createHmac('sha256', hmacSecret).update(input).digest();
  else if (alg === 'none') sig = Buffer.alloc(0);
  else throw new Error(`cannot sign with alg ${alg}`);
  return `${input}.${b64url(sig)}`;
}

/** Splits a compact JWS without checking it: { header, payload, signingInput, signature }. */
export function decodeJws(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWS (${parts.length} parts)`);
  return {
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: Buffer.from(parts[2], 'base64url'),
  };
}

/**
 * Verifies the signature of a compact JWS against a JWKS ({ keys: [...] }), as a relying party
 * does: the key is the one named by the header's kid, alg must be RS256 or ES256 and match the
 * key type. Returns { header, payload } or throws saying why.
 */
export function verifyJws(token, jwks) {
  const { header, payload, signingInput, signature } = decodeJws(token);
  if (header.alg !== 'RS256' && header.alg !== 'ES256') throw new Error(`alg ${header.alg} is not accepted`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key with kid ${header.kid} in the JWKS`);
  if ((header.alg === 'RS256') !== (jwk.kty === 'RSA')) throw new Error(`alg ${header.alg} does not fit a ${jwk.kty} key`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const ok = header.alg === 'ES256'
    ? verify('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' }, signature)
    : verify('sha256', Buffer.from(signingInput), key, signature);
  if (!ok) throw new Error(`bad signature (kid ${header.kid})`);
  return { header, payload };
}

/** OIDC at_hash / c_hash for a SHA-256 alg: the left half of the hash, base64url. */
export function halfHash(value) {
  const d = createHash('sha256').update(value, 'ascii').digest();
  return b64url(d.subarray(0, d.length / 2));
}
