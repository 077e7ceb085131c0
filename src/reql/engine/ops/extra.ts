// Term families beyond the core, one module each.
import './math.js';
import './string.js';
import './array.js';
import './aggregate.js';
import './time.js';
import './convert.js';
