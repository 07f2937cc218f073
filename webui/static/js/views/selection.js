// Side panel: the selected probe image (placeholder until the selection view lands).
import {h, clear} from '../dom.js';
import {thumbURL} from '../api.js';

export default {
  mount(el) { clear(el).append(h('p', {class: 'muted', text: 'Click an image to select it.'})); },
  update(ctx) {
    if (ctx.state.sel === undefined) return;
  },
};
