"""Entry points: the aiohttp app (HTTP, WebSocket, SSE) and the command line."""
