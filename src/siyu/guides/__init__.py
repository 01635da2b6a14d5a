"""Guides, stores and WeCom SCRM (导购 · 门店 · 企微): bindings, attribution, tasks, performance."""
