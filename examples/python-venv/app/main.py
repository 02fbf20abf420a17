"""A tiny stdlib-only Python app: run from a venv built in another stage, as a non-root user."""
import os
import platform
import pwd
import sys


def main() -> None:
    user = pwd.getpwuid(os.getuid()).pw_name
    in_venv = sys.prefix != sys.base_prefix
    print(
        f"hello from Python {platform.python_version()} "
        f"(venv {sys.prefix}: {'yes' if in_venv else 'no'}, user {user}, uid {os.getuid()}), "
        "built by whittle"
    )


if __name__ == "__main__":
    main()
