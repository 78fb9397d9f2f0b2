using ManagedDisks.Fuzz.Harness;
using ManagedDisks.Fuzz.Live;
using SharpFuzz;

// managed-disks-fuzz TARGET            run TARGET under afl-fuzz (persistent mode), input on stdin
// managed-disks-fuzz TARGET FILE...    run TARGET once on each file, e.g. to reproduce a finding
// managed-disks-fuzz live SOCKET COUNT [SEED]   wrong clients against a running daemon (exports disk0 64M, ro 4M read-only)
if (args is ["live", string socket, string count, ..])
{
    LiveExport[] exports = [new("disk0", 64 << 20, false), new("ro", 4 << 20, true)];
    var result = await LiveFuzzer.RunAsync(socket, exports, args.Length > 3 ? int.Parse(args[3]) : 1, long.Parse(count));
    Console.WriteLine($"{result.Sequences} sequences, {result.Frames} frames, {result.Hangs.Count} hangs");
    foreach (string hang in result.Hangs.Take(20)) Console.WriteLine(hang);
    return result.Hangs.Count == 0 ? 0 : 1;
}

if (args.Length == 0 || FuzzTargets.Find(args[0]) is not { } target)
{
    Console.Error.WriteLine($"usage: ManagedDisks.Fuzz TARGET [FILE...]; targets: {string.Join(", ", FuzzTargets.All.Select(t => t.Name))}");
    return 2;
}

if (args.Length > 1)
{
    foreach (string file in args.Skip(1))
    {
        target.Run(File.ReadAllBytes(file));
        Console.WriteLine($"{file}: ok");
    }
    return 0;
}

// afl-fuzz rewrites stdin for each input; SharpFuzz reports an exception that escapes as a crash.
Fuzzer.Run(stream =>
{
    using var copy = new MemoryStream();
    stream.CopyTo(copy);
    target.Run(copy.ToArray());
});
return 0;
