// Placeholder: this view is being built.
import {h, clear} from '../dom.js';

export default {
  id: 'metrics',
  title: 'Metrics & filters',
  mount(el) { clear(el).append(h('p', {class: 'muted', text: 'This view is not built yet.'})); },
  update() {},
};
