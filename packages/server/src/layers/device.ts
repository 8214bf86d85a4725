/** Linux dev_t encoding (glibc's gnu_dev_major/gnu_dev_minor) for numbers from fs.Stats.rdev. */
export function major(dev: number): number {
  return ((dev >>> 8) & 0xfff) | ((Math.floor(dev / 2 ** 32) & 0xfffff000) >>> 0);
}

export function minor(dev: number): number {
  return (dev & 0xff) | ((dev >>> 12) & 0xfff00);
}
