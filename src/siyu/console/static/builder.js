// The audience builder (Alpine component): conditions → the rule language's JSON (docs/audiences.md).
// The JSON goes to the server as it is; the server parses, checks and counts it (no rule logic here).
function audienceBuilder() {
  return {
    match: "all",
    conds: [{ kind: "attribute", subject: "city", op: "=", value: "", days: 90 }],
    add() { this.conds.push({ kind: "attribute", subject: "city", op: "=", value: "", days: 90 }); },
    remove(i) { this.conds.splice(i, 1); },
    num(v) { var n = Number(v); return v !== "" && !isNaN(n) ? n : v; },
    values(c) {
      if (c.op === "in" || c.op === "not_in") return c.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      if (c.op === "between") return c.value.split(",").map((s) => this.num(s.trim()));
      return this.num(c.value);
    },
    leaf(c) {
      switch (c.kind) {
        case "attribute": return { attribute: c.subject, op: c.op, value: this.values(c) };
        case "tag": return c.value === "" ? { tag: c.subject } : { tag: c.subject, op: c.op, value: this.values(c) };
        case "membership": return c.subject === "member" ? { membership: "member" } : { membership: c.subject, op: c.op, value: this.values(c) };
        case "layer": return { layer: c.value, op: c.op };
        case "spent": return { spent: Number(c.value || 0), op: c.op, last_days: Number(c.days || 90) };
        case "did": return { did: c.subject, min_times: Number(c.value || 1), last_days: Number(c.days || 30) };
        case "reachable": return { reachable: c.subject };
        case "lifecycle": return { lifecycle: c.value };
        case "rfm_group": return { rfm_group: c.value };
      }
    },
    get rule() {
      var leaves = this.conds.map((c) => this.leaf(c));
      var doc = leaves.length === 1 ? leaves[0] : {};
      if (leaves.length !== 1) doc[this.match] = leaves;
      return JSON.stringify(doc);
    },
    init() {
      this.$watch("rule", () => this.$nextTick(() => htmx.trigger("#count-form", "recount")));
      this.$nextTick(() => htmx.trigger("#count-form", "recount"));
    }
  };
}
