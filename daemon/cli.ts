#!/usr/bin/env node
// placeholder CLI: replaced by the real one
console.log("alpaca");
