#!/usr/bin/env node
import { demo } from './demo.js';

const [command] = process.argv.slice(2);
if (command === 'demo') {
  demo().then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`stevedore demo: ${error.message}`);
      process.exit(1);
    },
  );
} else {
  console.error('usage: stevedore demo');
  process.exit(2);
}
