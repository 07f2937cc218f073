// The only module that calls fetch. Every API error has the shape
// {ok: false, error, status}; it is thrown as an ApiError with that message.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

async function check(res) {
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  try { const body = await res.json(); if (body && body.error) message = body.error; } catch (_) { /* not JSON */ }
  throw new ApiError(message, res.status);
}

export async function getJSON(path, params) {
  return (await check(await fetch(url(path, params)))).json();
}

export async function postJSON(path, body, params) {
  const res = await fetch(url(path, params), {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body || {}),
  });
  return (await check(res)).json();
}

export async function postForm(path, form, params) {
  return (await check(await fetch(url(path, params), {method: 'POST', body: form}))).json();
}

// Binary arrays: uint32 header length, JSON header, then 8-byte-aligned arrays
// (see webui/params.py:binary). Returns {meta, arrays: {name: TypedArray}} and
// each typed array carries its .shape.
const TYPES = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array, float64: Float64Array, int16: Int16Array, uint16: Uint16Array, uint32: Uint32Array, int8: Int8Array};

export function decodeBinary(buffer) {
  const headerLen = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLen)));
  const base = 4 + headerLen;
  const arrays = {};
  for (const spec of header.arrays) {
    const T = TYPES[spec.dtype];
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const arr = new T(buffer, base + spec.offset, count);
    arr.shape = spec.shape;
    arrays[spec.name] = arr;
  }
  return {meta: header.meta, arrays};
}

export async function getBinary(path, params) {
  const res = await check(await fetch(url(path, params)));
  return decodeBinary(await res.arrayBuffer());
}

export function thumbURL(run, probeId) {
  return `/api/runs/${encodeURIComponent(run)}/probes/${probeId}/thumbnail.png`;
}
