using System.Diagnostics;

namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// What a running daemon holds in memory, for searching it for secrets, two ways: a core dump by
/// gcore, which honours MADV_DONTDUMP as the kernel's crash dumps do (the daemon marks its key
/// pages so); and a memory image (tests/reliability/memory-image.py) of every readable page,
/// DONTDUMP or not, which shows what is really in memory.
/// </summary>
public static class CoreDump
{
    /// <summary>gcore: the process stops for the moment of the dump, then goes on.</summary>
    public static async Task GcoreAsync(int pid, string path)
    {
        var result = await Tool.RunAsync("gdb", ["-nx", "-batch", "-p", pid.ToString(), "-ex", $"gcore {path}", "-ex", "detach"],
            timeout: TimeSpan.FromMinutes(3));
        Assert.That(File.Exists(path), Is.True, $"gdb wrote no core dump:\n{result}");
    }

    /// <summary>Every readable page of the running process, DONTDUMP ones included.</summary>
    public static async Task MemoryImageAsync(int pid, string path)
    {
        var result = await Tool.RunAsync("python3", [ReliabilityScripts.Path("memory-image.py"), pid.ToString(), path]);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
    }

    /// <summary>
    /// Both, at the moment the process exits (its exit_group system call): after everything its
    /// shutdown does (a daemon disposes its disks and wipes their keys), before the kernel frees
    /// its memory. Returns once gdb is attached and waiting; ask the process to stop, then await
    /// the returned task.
    /// </summary>
    public static async Task<Task> AtExitAsync(int pid, string gcorePath, string imagePath)
    {
        Tool.Require("gdb");
        var info = new ProcessStartInfo(Tool.Find("gdb")!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
                 {
                     "-nx", "-batch", "-p", pid.ToString(),
                     // .NET uses signals itself (thread suspension, SIGTERM handling): let them all through.
                     "-ex", "handle all nostop noprint pass",
                     "-ex", "catch syscall exit_group",
                     "-ex", "echo GDB-WAITING\\n",
                     "-ex", "continue",
                     "-ex", $"gcore {gcorePath}",
                     "-ex", $"shell /usr/bin/python3 {ReliabilityScripts.Path("memory-image.py")} {pid} {imagePath}",
                     "-ex", "detach",
                 })
            info.ArgumentList.Add(argument);
        var gdb = Process.Start(info)!;
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Text.StringBuilder();
        gdb.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (e.Data.Contains("GDB-WAITING", StringComparison.Ordinal)) waiting.TrySetResult();
        };
        gdb.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        gdb.BeginOutputReadLine();
        gdb.BeginErrorReadLine();
        if (await Task.WhenAny(waiting.Task, gdb.WaitForExitAsync(), Task.Delay(TimeSpan.FromMinutes(2))) != waiting.Task)
        {
            if (!gdb.HasExited) gdb.Kill();
            lock (output) Assert.Fail($"gdb did not attach:\n{output}");
        }
        return Finish();

        async Task Finish()
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await gdb.WaitForExitAsync(deadline.Token);
            lock (output) Assert.That(File.Exists(gcorePath) && File.Exists(imagePath), Is.True, $"gdb wrote no dump at exit:\n{output}");
            gdb.Dispose();
        }
    }
}
