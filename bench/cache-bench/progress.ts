// The once-a-second progress line on stderr. On a terminal it rewrites one line in place (\r and
// erase-to-end-of-line); into a pipe or file it writes plain lines, so logs stay readable.
export class ProgressLine {
  private shown = false;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly tty = out.isTTY === true) {}

  update(text: string): void {
    if (this.tty) this.out.write(`\r${text}\x1b[K`);
    else this.out.write(text + '\n');
    this.shown = true;
  }

  /** Ends an in-place line so that what follows starts on a fresh line. */
  done(): void {
    if (this.tty && this.shown) this.out.write('\n');
    this.shown = false;
  }
}
