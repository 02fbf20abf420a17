FROM python:3.12-slim
RUN <<EOF
#!/usr/bin/env python3
import sys
print("running python", sys.version_info.major)
EOF
RUN <<EOF bash
echo "not a bare heredoc: shebang rule does not apply"
EOF
