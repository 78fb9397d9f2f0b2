using ManagedDisks.Fuzz.Harness;
using SharpFuzz;

// managed-disks-fuzz TARGET            run TARGET under afl-fuzz (persistent mode), input on stdin
// managed-disks-fuzz TARGET FILE...    run TARGET once on each file, e.g. to reproduce a finding
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
