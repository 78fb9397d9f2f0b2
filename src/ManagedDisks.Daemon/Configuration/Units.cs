using System.Globalization;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>Sizes like "10G" (binary units, as qemu-img and nbdkit read them) and durations like "90s".</summary>
internal static class Units
{
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        text = text.Trim();
        if (text.Length == 0) return false;
        long multiplier = char.ToUpperInvariant(text[^1]) switch
        {
            'K' => 1L << 10,
            'M' => 1L << 20,
            'G' => 1L << 30,
            'T' => 1L << 40,
            'P' => 1L << 50,
            _ => 1,
        };
        string digits = multiplier == 1 ? text : text[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value)) return false;
        try { bytes = checked(value * multiplier); }
        catch (OverflowException) { return false; }
        return true;
    }

    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        text = text.Trim();
        (string digits, double scale) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1),
            _ when text.EndsWith('m') => (text[..^1], 60),
            _ when text.EndsWith('h') => (text[..^1], 3600),
            _ when text.EndsWith('d') => (text[..^1], 86400),
            _ => ("", 0),
        };
        if (!double.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value) || value <= 0) return false;
        duration = TimeSpan.FromSeconds(value * scale);
        return true;
    }

    /// <summary>The duration as <see cref="TryParseDuration"/> reads it back: "10s", "5m", "250ms".</summary>
    public static string FormatDuration(TimeSpan duration)
    {
        foreach (var (unit, length) in new[] { ("d", TimeSpan.FromDays(1)), ("h", TimeSpan.FromHours(1)), ("m", TimeSpan.FromMinutes(1)), ("s", TimeSpan.FromSeconds(1)) })
            if (duration >= length && duration.Ticks % length.Ticks == 0) return $"{duration.Ticks / length.Ticks}{unit}";
        return $"{duration.TotalMilliseconds.ToString("0.####", CultureInfo.InvariantCulture)}ms";
    }

    public static string FormatSize(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return unit == 0 ? $"{bytes} B" : $"{value.ToString("0.##", CultureInfo.InvariantCulture)} {units[unit]}";
    }
}
