// keyrouter-client: rank keyrouter lookups locally, byte-identical to the server.
// See README.md and docs/clients.md in the keyrouter repository.

export { Client } from "./client.js";
export { ALGORITHM, LookupError, Table, TableError } from "./table.js";
