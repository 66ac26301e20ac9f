"""The chat page: load the notes index once, then serve it on loopback.

python app.py                                      # http://127.0.0.1:7860
python app.py --notes ~/notes --port 7861
RAG_AUTH=me:secret python app.py --host 0.0.0.0    # on the network: ask for a password
python app.py --llm-url http://127.0.0.1:8080/v1   # answers written by a local LLM

Everything is in rag/web/app.py; `python app.py --help` lists the flags.
"""

import sys

from rag.web.app import main

if __name__ == "__main__":
    sys.exit(main())
