#!/usr/bin/env node
// The `onair` command. TypeScript runs through tsx's loader; no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/src/main.ts');
