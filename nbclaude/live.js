// The live view of one reply, in the browser: nbclaude/widget.py sends what changed, in
// custom messages, and this shows it. Nothing that arrived is ever sent again: finished
// HTML is appended once; the open end (the "tail") comes as the characters that follow
// what the browser already has of it. The reply's DOM is the static view's (the same HTML,
// in the same elements), so nothing moves when the static view replaces this one.
//
// A message is {ops, status}. Each op acts on the current section: the reply itself, or a
// thinking section (a <details>) while it streams.
//   ["html", keep, more]  finished HTML: the tail's first `keep` characters, then `more`;
//                         it goes before the tail, which loses those characters
//   ["tail", keep, more]  the tail is now its first `keep` characters, then `more`
//   ["seal"]              the tail is finished: it stays, and a new tail begins
//   ["open", html]        append an empty section (its HTML, closed), and enter it
//   ["close"]             back to the enclosing section
//   ["fold"]              fold every thinking section
// status is [state, seconds, tokens]: what is happening, since when, how far it got.

// Each reply's document, by its widget's key: anywidget gives initialize and render
// wrappers of the model, not one object.
const documents = new Map();

// Within this many pixels of the bottom of the scrolling area counts as at the end.
const AT_END = 48;

function initialize({ model }) {
  // Everything the reply received, kept with the model: a view rendered late (the cell
  // scrolled back into view, a second view of the output) replays it.
  const doc = { ops: [], status: ["waiting", 0, 0], receivedAt: performance.now() };
  const key = model.get("key");
  documents.set(key, doc);
  const receive = (message) => {
    for (const op of message.ops || []) doc.ops.push(op);
    if (message.status) {
      doc.status = message.status;
      doc.receivedAt = performance.now();
    }
  };
  model.on("msg:custom", receive);
  return () => {
    model.off("msg:custom", receive);
    documents.delete(key);
  };
}

function parse(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content;
}

function section(node, end) {
  return { node, end, tail: "", tailNodes: [], stale: false };
}

// The tail's HTML changes with several ops of a message; its DOM is rebuilt once, after.
function dropTail(target) {
  for (const node of target.tailNodes) node.remove();
  target.tailNodes = [];
  target.stale = true;
}

function showTail(target) {
  if (!target.stale) return;
  const fragment = parse(target.tail);
  target.tailNodes = Array.from(fragment.childNodes);
  target.node.insertBefore(fragment, target.end);
  target.stale = false;
}

function apply(view, op) {
  const target = view.stack[view.stack.length - 1];
  switch (op[0]) {
    case "html":
      dropTail(target);
      target.node.insertBefore(parse(target.tail.slice(0, op[1]) + op[2]), target.end);
      target.tail = target.tail.slice(op[1]);
      break;
    case "tail":
      dropTail(target);
      target.tail = target.tail.slice(0, op[1]) + op[2];
      break;
    case "seal":
      showTail(target);
      target.tail = "";
      target.tailNodes = [];
      break;
    case "open": {
      showTail(target);
      const element = parse(op[1]).firstElementChild;
      target.node.insertBefore(element, target.tailNodes[0] || target.end);
      view.stack.push(section(element, null));
      break;
    }
    case "close":
      showTail(target);
      if (view.stack.length > 1) view.stack.pop();
      break;
    case "fold":
      for (const details of view.reply.querySelectorAll("details.nbclaude-thinking")) {
        details.open = false;
      }
      break;
  }
}

function statusLine(doc) {
  const [state, seconds, tokens] = doc.status;
  const elapsed = seconds + (performance.now() - doc.receivedAt) / 1000;
  const count = tokens ? ` · ~${tokens.toLocaleString("en-US")} tokens` : "";
  return `${state} · ${elapsed.toFixed(1)} s${count}`;
}

// The element that scrolls the notebook: the nearest ancestor that scrolls vertically.
function scroller(el) {
  for (let node = el.parentElement; node; node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowY;
    if ((overflow === "auto" || overflow === "scroll") && node.scrollHeight > node.clientHeight) {
      return node;
    }
  }
  return document.scrollingElement;
}

// Whether the reader is at the end of the reply: its last line is in view.
function atEnd(el, area) {
  const bottom = el.getBoundingClientRect().bottom;
  const view = area === document.scrollingElement
    ? { top: 0, bottom: window.innerHeight }
    : area.getBoundingClientRect();
  return bottom >= view.top && bottom <= view.bottom + AT_END;
}

function render({ model, el }) {
  const doc = documents.get(model.get("key"));
  // The classes of a rendered HTML output: the front end's look for Markdown applies to
  // the live view as it does to the static one.
  const page = document.createElement("div");
  page.className = "jp-RenderedHTMLCommon jp-RenderedHTML nbclaude-live";
  // The frame: the reply's element, what the prompt sent, and the status line last.
  page.innerHTML = model.get("frame");
  const reply = page.firstElementChild;
  const status = reply.lastElementChild;
  el.appendChild(page);

  const view = { reply, stack: [section(reply, status)], applied: 0 };
  const catchUp = () => {
    const ops = doc.ops;
    if (view.applied === ops.length) return;
    // Follow the reply while the reader is at its end; never once they scrolled away.
    const area = scroller(el);
    const follow = area && atEnd(el, area);
    for (; view.applied < ops.length; view.applied++) apply(view, ops[view.applied]);
    for (const target of view.stack) showTail(target);
    if (follow) {
      const over = el.getBoundingClientRect().bottom - (area === document.scrollingElement
        ? window.innerHeight : area.getBoundingClientRect().bottom);
      if (over > 0) area.scrollTop += over;
    }
  };
  const update = () => {
    catchUp();
    status.textContent = statusLine(doc);
  };
  update();
  model.on("msg:custom", update);
  // The elapsed time moves on between messages (while waiting for the first one, too).
  const timer = setInterval(() => { status.textContent = statusLine(doc); }, 100);
  return () => {
    clearInterval(timer);
    model.off("msg:custom", update);
  };
}

export default { initialize, render };
