// The canned upstream answer the benchmarks serve (proxy.mjs, callgrind.mjs): Omni's getData
// result, a query and 10 rows as its text content, in JSON and in SSE framing.
export const CANNED_DATA = {
  modelId: '4f1c2a8e-5b0d-4e8a-9c61-2f7d3a1b9e10',
  topic: 'orders',
  query: { table: 'orders', fields: ['orders.month', 'customers.name', 'orders.revenue'], filters: {},
    sorts: [{ column_name: 'orders.revenue', sort_descending: true }], limit: 10 },
  result: Array.from({ length: 10 }, (_, i) => ({ 'orders.month': `2025-${String(i + 1).padStart(2, '0')}`,
    'customers.name': `Customer ${i + 1}`, 'orders.revenue': 100000 - i * 7919 })),
};
export const CANNED_JSON = JSON.stringify({ jsonrpc: '2.0', id: 1, result: {
  content: [{ type: 'text', text: JSON.stringify(CANNED_DATA) }], isError: false } });
export const CANNED_SSE = `event: message\ndata: ${CANNED_JSON}\n\n`;

/** s as a single-quoted nginx string (for a `return` directive). */
export const nginxQuote = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
