namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>What a process holds, read from /proc: resident memory, open descriptors and sockets.</summary>
public static class ProcessResources
{
    /// <summary>VmRSS from /proc/PID/status, in bytes.</summary>
    public static long ResidentBytes(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;
    }

    public static int OpenDescriptors(int pid) => Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;

    /// <summary>
    /// Descriptors that are sockets: listeners and connections. (The runtime also opens a
    /// descriptor or two for each assembly it loads later on, which is no leak.)
    /// </summary>
    public static int OpenSockets(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd").Count(fd => Target(fd)?.StartsWith("socket:", StringComparison.Ordinal) == true);

    private static string? Target(string link)
    {
        try { return File.ResolveLinkTarget(link, returnFinalTarget: false)?.FullName is { } t ? Path.GetFileName(t) : null; }
        catch (IOException) { return null; } // closed while we looked
    }

    /// <summary>Waits until the process holds at most <paramref name="limit"/> sockets; returns the last count seen.</summary>
    public static async Task<int> WaitForSocketsAtMostAsync(int pid, int limit, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        int count;
        while ((count = OpenSockets(pid)) > limit && DateTime.UtcNow < deadline)
            await Task.Delay(100).ConfigureAwait(false); // polling a condition the daemon offers no event for
        return count;
    }
}
