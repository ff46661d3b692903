// Writes scripts/config.schema.json: the JSON Schema of the config file, generated from the schema
// the node parses it with (src/config/schema.ts), for editors to check and complete a config that
// names it in "$schema". Run by `npm run config-schema`; test/unit/config.test.ts fails while the
// committed file differs from what the schema generates.
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { configJsonSchema } = require('../dist/src/config/schema.js')
writeFileSync(new URL('config.schema.json', import.meta.url), `${JSON.stringify(configJsonSchema(), null, 2)}\n`)
