// The fake Omni's "directory": who a request acts as, and what that identity may see.
// Everything here is driven by data.json; nothing knows about particular tests.

const UNAUTHORIZED = { detail: 'Unauthorized: Missing or invalid API key', status: 401 };

// Header values come from the request log's header map, where a header sent twice is an array.
// A credential header sent twice is ambiguous, so it is refused.
function single(headers, name) {
  const value = headers[name];
  if (Array.isArray(value)) return { ambiguous: true };
  return { value: value === undefined || value === '' ? undefined : value };
}

export class Directory {
  constructor(data) {
    this.data = data;
    this.usersById = new Map(data.users.map(u => [u.id, u]));
    this.usersByPat = new Map(data.users.filter(u => u.pat).map(u => [u.pat, u]));
  }

  // Omni's rules (../../shared/docs/omni-mcp.md): a PAT acts as its owner and X-MCP-User-ID is
  // ignored; the organization key acts as X-MCP-User-ID's user, or as the admin without it.
  // Returns { identity } or { status, body } for a refusal.
  authenticate(headers, { userRequiredStatus }) {
    const auth = single(headers, 'authorization');
    const match = !auth.ambiguous && /^Bearer +(\S+)$/i.exec(auth.value ?? '');
    if (!match) return { status: 401, body: UNAUTHORIZED };
    const token = match[1];

    const owner = this.usersByPat.get(token);
    if (owner) return { identity: { user: owner, keyScope: 'user', token } };
    if (token !== this.data.orgKey) return { status: 401, body: UNAUTHORIZED };

    const userId = single(headers, 'x-mcp-user-id');
    if (userId.ambiguous) return { status: 401, body: UNAUTHORIZED };
    if (userId.value !== undefined) {
      const user = this.usersById.get(userId.value);
      if (!user) return { status: 401, body: UNAUTHORIZED };
      return { identity: { user, keyScope: 'organization', token } };
    }
    // The org key alone means admin reach: refuse it when the caller said a user is required.
    // A duplicated X-MCP-User-Required counts as required: fail closed.
    const required = single(headers, 'x-mcp-user-required');
    if (required.ambiguous || String(required.value ?? '').toLowerCase() === 'true') {
      return { status: userRequiredStatus, body: { detail: 'A user ID is required', status: userRequiredStatus } };
    }
    return { identity: { user: this.usersById.get(this.data.adminUserId), keyScope: 'organization', token } };
  }

  isAdmin(user) {
    return user.role === 'Admin';
  }

  modelsFor(user) {
    return this.data.models.filter(m => this.isAdmin(user) || user.models.includes(m.id));
  }

  // undefined when the model does not exist or the user may not reach it: Omni does not tell apart.
  modelFor(user, modelId) {
    return this.modelsFor(user).find(m => m.id === modelId);
  }

  // Row-level access: a user with a region sees only that region's rows; the admin sees all.
  accessFilters(user, topic) {
    return user.region ? { [`${topic.base_view_name}.region`]: { is: user.region } } : {};
  }

  rowsFor(user, topic) {
    const column = `${topic.base_view_name}.region`;
    return topic.rows.filter(row => !user.region || row[column] === user.region);
  }

  docs() {
    return this.data.docs;
  }
}

// Pick the topic whose name, label or description shares the most words with the prompt, among
// the given models (first one wins ties). Returns { model, topic }.
export function bestTopic(models, prompt = '') {
  const words = new Set(prompt.toLowerCase().match(/[a-z0-9]+/g) ?? []);
  const score = t => `${t.name} ${t.label} ${t.description}`.toLowerCase().match(/[a-z0-9]+/g)
    .filter(w => words.has(w)).length;
  let best;
  for (const model of models) {
    for (const topic of model.topics) {
      if (!best || score(topic) > best.score) best = { model, topic, score: score(topic) };
    }
  }
  return best && { model: best.model, topic: best.topic };
}

export function topicSummary(topic) {
  const { name, base_view_name, label, description, group_label } = topic;
  return { name, base_view_name, label, description, group_label, hidden: false };
}
