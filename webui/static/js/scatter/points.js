// Points on WebGL2 (gl.POINTS): a million discs in one draw call.
//
// The tween runs in the vertex shader: the positions before and after a step
// change are two buffers, and a frame only sets the mix factor, so a frame
// costs the same whether 1,000 or 1,000,000 points move. Each point has an
// RGB colour and a state (0 plain, 1 dimmed, 2 highlighted: larger and
// outlined); the draw order is an index buffer (hidden points are left out of
// it). Colours are premultiplied, so the canvas's alpha is the points' cover,
// as on a 2-D canvas. What a point passes to its fragments is flat (one value a
// point): SwiftShader, which CI and machines without a GPU draw with, then sets
// up no interpolation for it.
//
// createPoints(canvas) returns null where a WebGL2 context cannot be made.

const VERTEX = `#version 300 es
in vec2 a_from; in vec2 a_to; in vec3 a_color; in float a_state;
uniform float u_mix; uniform vec2 u_scale; uniform vec2 u_offset; uniform vec2 u_size;
uniform float u_radius; uniform float u_dpr; uniform float u_alpha; uniform float u_dim;
flat out vec4 v_color; flat out float v_outline; flat out float v_radius; flat out float v_side;
void main() {
  vec2 px = u_offset + u_scale * mix(a_from, a_to, u_mix); // CSS pixels, y down
  gl_Position = vec4(2.0 * px.x / u_size.x - 1.0, 1.0 - 2.0 * px.y / u_size.y, 0.0, 1.0);
  v_outline = a_state == 2.0 ? 1.0 : 0.0;
  v_radius = u_radius * (v_outline > 0.5 ? 1.4 : 1.0);
  // The square holds the disc and its rim (half a pixel of antialiasing, and half more for an outline)
  // and no more: a software rasterizer (SwiftShader) pays for every fragment of it.
  v_side = 2.0 * v_radius + 1.0 + v_outline;
  gl_PointSize = v_side * u_dpr;
  v_color = vec4(a_color, a_state == 1.0 ? u_dim : u_alpha);
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
flat in vec4 v_color; flat in float v_outline; flat in float v_radius; flat in float v_side;
out vec4 colour;
void main() {
  float d = length(gl_PointCoord - 0.5) * v_side; // CSS pixels from the centre
  // A disc, antialiased over one pixel. No discard outside it: a fragment of no cover is (0, 0, 0, 0),
  // which the premultiplied blend leaves as it was, and discarding costs SwiftShader more than blending.
  float cover = clamp(v_radius + 0.5 * v_outline - d + 0.5, 0.0, 1.0);
  vec3 rgb = v_color.rgb; float a = v_color.a;
  if (v_outline > 0.5) { // a dark ring on the rim, as the 2-D canvas strokes it
    float ring = 0.8 * clamp(1.0 - abs(d - v_radius), 0.0, 1.0);
    rgb = mix(rgb, vec3(0.08), ring); a = max(a, ring);
  }
  colour = vec4(rgb * a * cover, a * cover);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(`WebGL shader: ${gl.getShaderInfoLog(shader)}`);
  return shader;
}

function program(gl) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`WebGL program: ${gl.getProgramInfoLog(p)}`);
  return p;
}

export function createPoints(canvas) {
  const gl = canvas.getContext('webgl2', {premultipliedAlpha: true, antialias: false, preserveDrawingBuffer: true});
  if (!gl) return null;
  const prog = program(gl);
  const vao = gl.createVertexArray();
  gl.bindVertexArray(vao);
  // One buffer per attribute: a step change uploads positions only, a highlight states only.
  const attribute = (name, size, type, normalized) => {
    const buffer = gl.createBuffer();
    const loc = gl.getAttribLocation(prog, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
    return buffer;
  };
  const buffers = {
    from: attribute('a_from', 2, gl.FLOAT, false),
    to: attribute('a_to', 2, gl.FLOAT, false),
    color: attribute('a_color', 3, gl.UNSIGNED_BYTE, true),
    state: attribute('a_state', 1, gl.UNSIGNED_BYTE, false),
  };
  const order = gl.createBuffer();
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, order);
  gl.bindVertexArray(null);
  const uniform = Object.fromEntries(['u_mix', 'u_scale', 'u_offset', 'u_size', 'u_radius', 'u_dpr', 'u_alpha', 'u_dim']
    .map((u) => [u, gl.getUniformLocation(prog, u)]));
  let count = 0;
  const upload = (buffer, data) => { gl.bindBuffer(gl.ARRAY_BUFFER, buffer); gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW); };

  return {
    renderer: (() => { const d = gl.getExtension('WEBGL_debug_renderer_info'); return d ? gl.getParameter(d.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); })(),
    // from, to: Float32Array (2N), data space; the frame mixes them by `mix`.
    setPositions(from, to) { upload(buffers.from, from); upload(buffers.to, to); },
    setColors(rgb) { upload(buffers.color, rgb); }, // Uint8Array (3N)
    setStates(states) { upload(buffers.state, states); }, // Uint8Array (N): 0 plain, 1 dimmed, 2 highlighted
    setOrder(rows) { // Uint32Array: the points to draw, first drawn first
      gl.bindVertexArray(vao);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, order);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, rows, gl.STATIC_DRAW);
      gl.bindVertexArray(null);
      count = rows.length;
    },
    // width, height: CSS pixels; a data point (x, y) lands at offset + scale * (x, y).
    draw({width, height, dpr, mix, scale, offset, radius, alpha, dim}) {
      gl.viewport(0, 0, canvas.width, canvas.height);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
      if (!count) return;
      gl.useProgram(prog);
      gl.uniform1f(uniform.u_mix, mix);
      gl.uniform2f(uniform.u_scale, scale[0], scale[1]);
      gl.uniform2f(uniform.u_offset, offset[0], offset[1]);
      gl.uniform2f(uniform.u_size, width, height);
      gl.uniform1f(uniform.u_radius, radius);
      gl.uniform1f(uniform.u_dpr, dpr);
      gl.uniform1f(uniform.u_alpha, alpha);
      gl.uniform1f(uniform.u_dim, dim);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.bindVertexArray(vao);
      gl.drawElements(gl.POINTS, count, gl.UNSIGNED_INT, 0);
      gl.bindVertexArray(null);
    },
    destroy() { const lose = gl.getExtension('WEBGL_lose_context'); if (lose) lose.loseContext(); },
  };
}
