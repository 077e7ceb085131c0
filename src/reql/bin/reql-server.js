#!/usr/bin/env node
// `reql-server`: the embedded ReQL server on its own (the same options as cli.ts). The package
// is TypeScript run through tsx, so this launcher registers tsx and loads cli.ts.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
