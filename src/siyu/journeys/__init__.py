"""Journeys (营销自动化): YAML definitions, triggers that enrol customers, and a state machine that
walks each enrolment through its steps exactly once (docs/journeys.md)."""
