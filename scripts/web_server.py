#!/usr/bin/env python3
"""Serves the repository for the browser package: `scripts/web_server.py PORT`.

Every response carries the headers that make a page cross-origin isolated (COOP same-origin,
COEP require-corp), which browsers require before a page may share memory with workers: the
package then runs the CPU backend on several threads. The same files under /plain/ are served
without them, for the single-threaded build (what a page on a host that cannot set headers
gets).
"""

import functools
import http.server
import sys

PLAIN = "/plain/"


class Handler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path):
        if path.startswith(PLAIN):
            path = path[len(PLAIN) - 1 :]
        return super().translate_path(path)

    def end_headers(self):
        if not self.path.startswith(PLAIN):
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    handler = functools.partial(Handler, directory=".")
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
