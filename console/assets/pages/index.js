// The console's pages in nav order. Each exports
// { title, path, roles, render(root, ctx) }; render may return a cleanup.
import overview from "./overview.js";
import decisions from "./decisions.js";
import rules from "./rules.js";
import lists from "./lists.js";
import accounts from "./accounts.js";
import review from "./review.js";
import raised from "./raised.js";
import dlq from "./dlq.js";
import pipeline from "./pipeline.js";
import alerts from "./alerts.js";

export default [overview, decisions, rules, lists, accounts, review, raised, dlq, pipeline, alerts];
