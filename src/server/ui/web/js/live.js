// Several watches behind one view: `draw` runs (once a frame at most) when every collection
// has arrived and after each change, with {plural: [objects]} and the Set of plurals changed
// since the last call.
import * as api from "./api.js";
import { h } from "./dom.js";

export function liveJoin(el, specs, draw) {
  const data = {};
  const errors = {};
  const changed = new Set();
  let pending = false;
  const stops = specs.map(([plural, ns]) =>
    api.watch(plural, ns, (objs, inf) => {
      data[plural] = [...objs.values()];
      changed.add(plural);
      if (inf.error) errors[plural] = inf.error;
      else delete errors[plural];
      schedule();
    }),
  );
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const missing = specs.filter(([p]) => !data[p] && !errors[p]);
      if (missing.length) return;
      const errs = Object.entries(errors);
      if (errs.length) {
        el.replaceChildren(...errs.map(([p, e]) => h("p", { class: "error" }, p + ": " + e)));
        return;
      }
      const which = new Set(changed);
      changed.clear();
      draw(data, which);
    });
  }
  return () => stops.forEach((s) => s());
}

// Records how long a drawing took from its data to the screen: after the markup is set and
// laid out, the next frame is painted. The benchmark and the tests read window.photonUi.
export function timed(name, fn) {
  const t0 = performance.now();
  fn();
  document.body.getBoundingClientRect(); // forces style and layout now
  requestAnimationFrame(() =>
    setTimeout(() => {
      const ms = performance.now() - t0;
      window.photonUi = window.photonUi || { timings: [] };
      window.photonUi.timings.push({ name, ms });
      document.body.setAttribute("data-drawn", name + ":" + window.photonUi.timings.length);
    }, 0),
  );
}
