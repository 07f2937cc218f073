// The run page's tabs, in order. Each view module exports
// {id, title, mount(el, ctx), update(ctx, changedKeys)}.

import embedding from './embedding.js';
import confusion from './confusion.js';
import metrics from './metrics.js';
import inspect from './inspect.js';
import analysis from './analysis.js';
import sql from './sql.js';

export const VIEWS = [embedding, confusion, metrics, inspect, analysis, sql];
