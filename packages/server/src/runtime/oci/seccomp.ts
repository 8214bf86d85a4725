/**
 * Our seccomp profile: allow by default, refuse the syscalls that reach kernel surfaces a
 * sandbox has no business touching (mounts, modules, kexec, BPF, perf, keyrings, time, swap,
 * handle-based opens, io_uring) and user namespaces (the usual first step of a kernel exploit).
 * Capabilities already stop most of these; seccomp is the second, independent wall.
 *
 * ptrace stays allowed (as in Docker on kernels ≥ 4.8): CAP_SYS_PTRACE is dropped and the pid
 * namespace confines it to the sandbox's own processes, while strace/gdb keep working.
 */

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

export const BLOCKED_SYSCALLS = [
  "acct",
  "add_key",
  "adjtimex",
  "bpf",
  "clock_adjtime",
  "clock_settime",
  "create_module",
  "delete_module",
  "finit_module",
  "fsconfig",
  "fsmount",
  "fsopen",
  "fspick",
  "get_kernel_syms",
  "init_module",
  "io_uring_enter",
  "io_uring_register",
  "io_uring_setup",
  "ioperm",
  "iopl",
  "kexec_file_load",
  "kexec_load",
  "keyctl",
  "lookup_dcookie",
  "mount",
  "mount_setattr",
  "move_mount",
  "name_to_handle_at",
  "nfsservctl",
  "open_by_handle_at",
  "open_tree",
  "perf_event_open",
  "pivot_root",
  "query_module",
  "quotactl",
  "reboot",
  "request_key",
  "setns",
  "settimeofday",
  "stime",
  "swapoff",
  "swapon",
  "_sysctl",
  "syslog",
  "umount",
  "umount2",
  "unshare",
  "uselib",
  "userfaultfd",
  "ustat",
  "vhangup",
];

export interface OciSeccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: Array<{
    names: string[];
    action: string;
    errnoRet?: number;
    args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  }>;
}

function architectures(): string[] {
  if (process.arch === "x64") return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
  if (process.arch === "arm64") return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
  return [];
}

export function seccompProfile(): OciSeccomp {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: architectures(),
    syscalls: [
      { names: BLOCKED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone(CLONE_NEWUSER): refused; ordinary fork/thread creation unaffected.
      {
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: "SCMP_CMP_MASKED_EQ" }],
      },
      // clone3 passes flags in memory seccomp cannot inspect; ENOSYS makes libc fall back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    ],
  };
}
