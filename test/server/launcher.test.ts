// bin/cache-server, the launcher users and these tests start nodes with: it must hand the node
// its allocator setting, keep an operator's own GLIBC_TUNABLES, and exec (the PID it was started
// as is the node's, so SIGKILL/SIGTERM by PID reach the server itself).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ServerProc, freePorts, rmDir, singleNodeArgs, tmpDir } from './harness.js';

function procEnv(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) out.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return out;
}

async function started(env: Record<string, string>): Promise<{ srv: ServerProc; dir: string }> {
  const dir = tmpDir();
  const srv = new ServerProc({ args: singleNodeArgs(dir, await freePorts(4)), env });
  await srv.start();
  return { srv, dir };
}

describe('server: bin/cache-server launcher', function () {
  this.timeout(30000);
  const running: Array<{ srv: ServerProc; dir: string }> = [];
  afterEach(() => {
    for (const { srv, dir } of running.splice(0)) {
      srv.proc?.kill('SIGKILL');
      rmDir(dir);
    }
  });

  it('execs node on cache-server.js under its own PID, with glibc huge pages and a fixed heap growing factor by default', async () => {
    const env: Record<string, string> = {};
    if (process.env['GLIBC_TUNABLES'] !== undefined) env['GLIBC_TUNABLES'] = ''; // ':=' default applies to unset and empty
    const s = await started(env);
    running.push(s);
    const pid = s.srv.proc!.pid!;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    expect(cmdline[0]).to.equal(process.execPath);
    expect(cmdline.some((a) => a.endsWith('dist/src/cli/cache-server.js'))).to.equal(true);
    expect(procEnv(pid).get('GLIBC_TUNABLES')).to.equal('glibc.malloc.hugetlb=1');
    // a fixed V8 heap growing factor (no full-GC storm when writes resume after a quiet spell)
    expect(cmdline.slice(1, cmdline.indexOf(cmdline.find((a) => a.endsWith('cache-server.js'))!))).to.include('--heap-growing-percent=200');
  });

  it("keeps an operator's own GLIBC_TUNABLES", async () => {
    const s = await started({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1048576' });
    running.push(s);
    expect(procEnv(s.srv.proc!.pid!).get('GLIBC_TUNABLES')).to.equal('glibc.malloc.trim_threshold=1048576');
  });
});
