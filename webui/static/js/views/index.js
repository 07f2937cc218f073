// The run page's tabs, in order. Every view module (and every panel inside a
// view) has one shape: mount(el, ctx) fills el and returns {update(changed),
// destroy()}; update gets the Set of state keys that changed (ctx.state holds
// their values), destroy stops the view's timers and empties el.

import * as embedding from './embedding.js';
import * as confusion from './confusion.js';
import * as metrics from './metrics.js';
import * as inspect from './inspect.js';
import * as analysis from './analysis.js';
import * as sql from './sql.js';

export const VIEWS = [embedding, confusion, metrics, inspect, analysis, sql];
