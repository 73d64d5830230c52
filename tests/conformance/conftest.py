"""The conformance suite's node_modules holds no tests of ours."""

collect_ignore = ["node_modules"]
