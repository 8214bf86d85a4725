// How handles print. A handle holds the client's transport, and through it the token: printing one
// (console.log, util.inspect, a test failure's diff) or JSON-serialising one must show what the handle
// stands for, never that. Each handle class has a `toJSON()` giving its public view, and `printAs`
// makes Node's inspect (which does not call toJSON) show the same view.

type Inspect = (value: unknown, options: unknown) => string;

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** Makes `util.inspect` / `console.log` of instances show `Name { …toJSON() }`. */
export function printAs(cls: { prototype: object }, name: string): void {
  Object.defineProperty(cls.prototype, INSPECT, {
    configurable: true,
    value(this: { toJSON(): unknown }, _depth: number, options: unknown, inspect?: Inspect): string {
      const view = this.toJSON();
      return `${name} ${inspect ? inspect(view, options) : JSON.stringify(view)}`;
    },
  });
}
