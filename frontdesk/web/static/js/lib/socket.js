// The tab's one WebSocket to /ws: resumes from the last event id per topic after a reconnect,
// asks the page for a fresh snapshot when the gap is gone, answers pings, backs off on failure.
// It rides on the session cookie (never a credential in the URL); the server closes it with 4401
// the moment that session ends, and the page goes to sign-in.
//
//   const socket = new DeskSocket();
//   socket.addEventListener("event", (e) => e.detail /* {id, topic, type, data, at} */);
//   socket.addEventListener("snapshot", (e) => e.detail.topic /* reload that topic's data */);
//   socket.addEventListener("state", (e) => e.detail /* "connecting" | "open" | "closed" */);
//   socket.subscribe(["conversation:<id>"]); socket.send({type: "typing", ...});

export class DeskSocket extends EventTarget {
  constructor(url = "/ws") {
    super();
    this.url = url;
    this.lastIds = {};
    this.topics = new Set();
    this.epoch = null;
    this.delay = 500;
    this.ws = null;
    this.stopped = false;
    this.connect();
  }

  connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}${this.url}`);
    this.ws = ws;
    this.emit("state", "connecting");
    ws.addEventListener("message", (message) => this.onMessage(message.data));
    ws.addEventListener("close", (event) => {
      this.emit("state", "closed");
      // 4401: signed out, password changed, account disabled (here or in another tab): sign in again.
      if (event.code === 4401) {
        window.location.assign(`/?next=${encodeURIComponent(window.location.pathname + window.location.hash)}`);
        return;
      }
      if (event.code === 4429) this.delay = 15000; // too many sockets from this address: wait longer
      if (!this.stopped) {
        setTimeout(() => this.connect(), this.delay);
        this.delay = Math.min(this.delay * 2, 15000);
      }
    });
  }

  onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case "hello": {
        this.delay = 500;
        const resumable = this.epoch !== null;
        const extra = [...this.topics].filter((t) => !msg.topics.includes(t));
        if (resumable) {
          const last = {};
          for (const topic of new Set([...msg.topics, ...this.topics])) last[topic] = this.lastIds[topic] || 0;
          this.raw({ type: "resume", last_event_ids: last, epoch: this.epoch });
        } else if (extra.length) {
          this.raw({ type: "subscribe", topics: extra });
        }
        if (resumable && this.epoch !== msg.epoch) this.lastIds = {};
        this.epoch = msg.epoch;
        for (const topic of msg.topics) this.topics.add(topic);
        this.emit("state", "open");
        this.emit("hello", msg);
        break;
      }
      case "ping":
        this.raw({ type: "pong" });
        break;
      case "snapshot_required":
        this.lastIds[msg.topic] = 0;
        this.emit("snapshot", { topic: msg.topic });
        break;
      case "pong":
      case "subscribed":
        break;
      case "error":
        console.warn("desk socket:", msg.detail);
        break;
      default:
        if (msg.topic && typeof msg.id === "number") {
          if (msg.id <= (this.lastIds[msg.topic] || 0)) return;
          this.lastIds[msg.topic] = msg.id;
          this.emit("event", msg);
        }
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  raw(payload) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(payload));
  }

  send(payload) {
    this.raw(payload);
  }

  subscribe(topics) {
    const fresh = topics.filter((t) => !this.topics.has(t));
    for (const topic of fresh) this.topics.add(topic);
    if (fresh.length) this.raw({ type: "subscribe", topics: fresh });
  }

  unsubscribe(topics) {
    for (const topic of topics) {
      this.topics.delete(topic);
      delete this.lastIds[topic];
    }
    this.raw({ type: "unsubscribe", topics });
  }

  close() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }
}
