#!/usr/bin/env python3
"""The outside truth for structured output (engine/json_schema.h): validates
documents against JSON schemas with the `jsonschema` package (Debian's
python3-jsonschema, Draft 2020-12).

Input: a file of JSON lines, each {"schema": <schema>, "text": "<document>"}.
Output: one line per input line, "valid", "invalid" or "notjson"."""
import json
import sys

import jsonschema


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            case = json.loads(line)
            validator = jsonschema.Draft202012Validator(case["schema"])
            try:
                doc = json.loads(case["text"])
            except ValueError:
                print("notjson")
                continue
            print("valid" if validator.is_valid(doc) else "invalid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
