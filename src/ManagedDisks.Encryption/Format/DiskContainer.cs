using ManagedDisks.BlockDevices;

namespace ManagedDisks.Encryption.Format;

/// <summary>The header of an opened disk: the copy in use and whether the other one needs repair.</summary>
public sealed record OpenedHeader(DiskHeader Header, ulong Sequence, IReadOnlyList<string?> CopyProblems)
{
    public bool NeedsRepair => CopyProblems.Any(p => p is not null);
}

/// <summary>
/// Reads and writes the two header copies of a backing file. Updates write copy 0, sync, then
/// copy 1, sync, both with the next sequence number: a crash at any point leaves one valid copy.
/// </summary>
public static class DiskContainer
{
    public static async Task<OpenedHeader> ReadAsync(IBlockDevice file, string path)
    {
        var candidates = new (DiskHeader Header, ulong Sequence)?[2];
        var problems = new string?[2];
        for (int copy = 0; copy < 2; copy++)
        {
            long offset = HeaderCodec.CopyOffset(copy);
            if (file.Size < offset + HeaderCodec.CopyArea)
            {
                problems[copy] = "missing (the file is shorter than the header area)";
                continue;
            }
            var area = new byte[HeaderCodec.CopyArea];
            await file.ReadAsync(offset, area).ConfigureAwait(false);
            candidates[copy] = HeaderCodec.TryDecode(area, copy, out problems[copy]);
        }

        var best = candidates.Where(c => c is not null).Select(c => c!.Value).OrderByDescending(c => c.Sequence).FirstOrDefault();
        if (best.Header is null)
        {
            bool noHeaderAtAll = problems.All(p => p is not null && (p.StartsWith("empty") || p.StartsWith("no ManagedDisks") || p.StartsWith("missing")));
            throw new DiskFormatException(noHeaderAtAll
                ? $"{path} is not a ManagedDisks encrypted disk (no header found); move it away to let the daemon create a new disk, or point [[disk]] path at the right file"
                : $"both header copies of {path} are damaged (copy 0: {problems[0]}; copy 1: {problems[1]}); the data cannot be decrypted without them: restore the file from a backup");
        }
        // An older but valid copy also needs rewriting: it is what a crash mid-update leaves.
        for (int copy = 0; copy < 2; copy++)
            if (problems[copy] is null && candidates[copy]!.Value.Sequence != best.Sequence)
                problems[copy] = $"older sequence {candidates[copy]!.Value.Sequence} than {best.Sequence}";

        long needed = best.Header.PayloadOffset + best.Header.LogicalSize;
        if (file.Size < needed)
            throw new DiskFormatException($"{path} is truncated: it holds {file.Size} bytes but its header describes {needed}; restore it from a backup");
        return new OpenedHeader(best.Header, best.Sequence, problems);
    }

    /// <summary>Writes both copies with <paramref name="sequence"/>, syncing after each.</summary>
    public static async Task WriteAsync(IBlockDevice file, DiskHeader header, ulong sequence)
    {
        for (int copy = 0; copy < 2; copy++)
        {
            await file.WriteAsync(HeaderCodec.CopyOffset(copy), HeaderCodec.Encode(header, copy, sequence), WriteOptions.None).ConfigureAwait(false);
            await file.FlushAsync().ConfigureAwait(false);
        }
    }
}
