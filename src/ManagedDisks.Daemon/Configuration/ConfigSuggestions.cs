namespace ManagedDisks.Daemon.Configuration;

/// <summary>"did you mean" for a mistyped key or table: the closest known name within a few edits.</summary>
internal static class ConfigSuggestions
{
    /// <summary>"; did you mean 'state_dir'?", where else the key belongs, or the keys this table has.</summary>
    public static string ForKey(string key, ConfigTable table)
    {
        if (Closest(key, table.Keys.Select(k => k.Name)) is { } match) return $"; did you mean '{match}'?";
        var owners = ConfigSchema.Tables.Where(t => t.Find(key) is not null).Select(t => t.Header).ToList();
        if (owners.Count > 0) return $"; '{key}' is a key of {string.Join(" and ", owners)}";
        return $"; {table.Header} has {string.Join(", ", table.Keys.Select(k => k.Name))}";
    }

    /// <summary>For a top-level name that is no table of disks.toml.</summary>
    public static string ForTable(string name)
    {
        if (Closest(name, ConfigSchema.Tables.Select(t => t.Name)) is { } match) return $"; did you mean {ConfigSchema.FindTable(match)!.Header}?";
        return $"; the tables are {string.Join(", ", ConfigSchema.Tables.Select(t => t.Header))}";
    }

    /// <summary>
    /// The candidate fewest edits away (optimal string alignment distance, so a swap of two
    /// letters is one edit), if within a third of its length; case and '-' versus '_' are free.
    /// </summary>
    public static string? Closest(string word, IEnumerable<string> candidates)
    {
        string normalized = Normalize(word);
        return candidates
            .Select(c => (Candidate: c, Distance: Distance(normalized, Normalize(c))))
            .Where(c => c.Distance <= Math.Clamp(c.Candidate.Length / 3, 1, 3))
            .OrderBy(c => c.Distance)
            .Select(c => c.Candidate)
            .FirstOrDefault();
    }

    private static string Normalize(string s) => s.ToLowerInvariant().Replace('-', '_');

    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
