"""The README's event table is the one tp-schema derives from proto/."""
import os
import subprocess

from tp_harness import BUILD, run

SOURCE = os.environ.get("TP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))


def test_readme_event_table_matches_proto():
    table = subprocess.run([os.path.join(BUILD, "tools", "tp-schema")],
                           capture_output=True, text=True, check=True).stdout
    readme = open(os.path.join(SOURCE, "README.md")).read()
    begin, end = "<!-- events:begin -->\n", "<!-- events:end -->"
    assert begin in readme and end in readme, "README lost its event table markers"
    shown = readme[readme.index(begin) + len(begin):readme.index(end)]
    assert shown == table, ("README's event table is stale: regenerate it with "
                            "build/tools/tp-schema")


if __name__ == "__main__":
    run([test_readme_event_table_matches_proto])
