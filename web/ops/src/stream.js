// GET /v1/ops/stream read with fetch, not EventSource: the token travels in the
// Authorization header, so it is in no URL, log or history. Server-sent events are parsed
// here (event + data lines); the stream is reopened after a drop, with backoff, but not
// after `event: end` (the token expired, or a newer page of the same token took over).

export async function follow(url, token, handlers) {
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
        cache: 'no-store',
      });
    } catch (err) {
      handlers.onDown(String(err));
      await sleep(backoffMs(attempt));
      continue;
    }
    if (response.status === 401 || response.status === 403) {
      handlers.onRefused(response.status, await response.text());
      return; // the same token will be refused again: no retry
    }
    if (response.ok) {
      attempt = 0;
      handlers.onOpen();
      try {
        const end = await readEvents(response.body, handlers.onEvent);
        if (end !== null) {
          handlers.onEnded(end.reason);
          return;
        }
      } catch (err) {
        handlers.onDown(String(err));
      }
    } else {
      handlers.onDown(`HTTP ${response.status}`);
    }
    await sleep(backoffMs(attempt));
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const parsed = parseEvent(block);
      if (parsed?.event === 'end') return parsed.data;
      if (parsed !== null) onEvent(parsed.event, parsed.data);
    }
  }
}

function parseEvent(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  return data.length === 0 ? null : { event, data: JSON.parse(data.join('\n')) };
}

function backoffMs(attempt) {
  return Math.min(10_000, 500 * 2 ** attempt);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
