#!/usr/bin/env node
// npm `bin` entry: runs the TypeScript CLI through tsx's loader in this same process
// (one process, so service managers and kill signals reach the real program).
import { register } from 'tsx/esm/api';

register();
await import('../plantlink.ts');
