using System.Net;
using System.Net.Sockets;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Tests;

public class ConfigLoaderTests
{
    [Test]
    public void ReadsEveryKey()
    {
        var settings = ConfigLoader.Load("""
            [daemon]
            state_dir = "/srv/md"
            listen = ["unix:nbd.sock", "tcp:127.0.0.1:10809", "tcp:[::1]:10810"]
            admin_socket = "/run/md/admin.sock"
            max_connections = 32
            handshake_timeout = "2s"
            connection_inflight_bytes = "128M"
            platform_key_secret = "/run/credentials/md/platform-key"

            [[disk]]
            name = "disk1"
            size = "10G"
            description = "database"

            [[disk]]
            name = "ro"
            size = "4096"
            path = "/data/ro.img"
            read_only = true
            sector_size = 512
            detect_zeroes = true
            """, "test.toml", "/etc");

        Assert.That(settings.StateDir, Is.EqualTo("/srv/md"));
        Assert.That(settings.Listen.Select(l => l.EndPoint.ToString()),
            Is.EqualTo(new[] { "/srv/md/nbd.sock", "127.0.0.1:10809", "[::1]:10810" }));
        Assert.That(settings.Listen[0].EndPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(settings.Listen[1].EndPoint, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 10809)));
        Assert.That(settings.AdminSocket, Is.EqualTo("/run/md/admin.sock"));
        Assert.That(settings.PlatformKeyFile, Is.EqualTo("/srv/md/keys/platform-key.pem"));
        Assert.That(settings.PlatformKeySecretFile, Is.EqualTo("/run/credentials/md/platform-key"));
        Assert.That(settings.Server.MaxConnections, Is.EqualTo(32));
        Assert.That(settings.Server.HandshakeTimeout, Is.EqualTo(TimeSpan.FromSeconds(2)));
        Assert.That(settings.Server.MaxInFlightBytesPerConnection, Is.EqualTo(128L << 20));
        Assert.That(settings.Disks, Is.EqualTo(new[]
        {
            new DiskSettings("disk1", 10L << 30, "/srv/md/disks/disk1.img", "database", false),
            new DiskSettings("ro", 4096, "/data/ro.img", "", true, 512, true),
        }));
    }

    [Test]
    public void RelativeStateDirIsUnderTheConfigFilesFolder()
    {
        var settings = ConfigLoader.Load("[daemon]\nstate_dir = \"state\"\n", "x.toml", "/etc/md");
        Assert.That(settings.StateDir, Is.EqualTo("/etc/md/state"));
        Assert.That(settings.Listen.Single().Text, Is.EqualTo("unix:/etc/md/state/nbd.sock"));
    }

    [Test]
    public void EmbeddedDefaultServesDisk0InTheWorkingDirectory()
    {
        var settings = ConfigLoader.LoadEmbeddedDefault("/home/u");
        Assert.That(settings.StateDir, Is.EqualTo("/home/u/managed-disks-state"));
        Assert.That(settings.Listen.Select(l => l.Text), Is.EqualTo(new[] { "unix:/home/u/managed-disks-state/nbd.sock", "tcp:127.0.0.1:10809" }));
        Assert.That(settings.Disks.Single().Name, Is.EqualTo("disk0"));
        Assert.That(settings.Disks.Single().Size, Is.EqualTo(1L << 30));
    }

    [Test]
    public void ReportsEveryProblemAtOnce()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("""
            [daemon]
            listen = ["udp:1.2.3.4:5", "tcp:nohost"]
            handshake_timeout = "soon"
            max_connections = 0

            [[disk]]
            name = "bad name!"
            size = "1G"

            [[disk]]
            name = "a"
            size = "12Q"

            [[disk]]
            name = "a"
            size = "1000"

            [[disk]]
            name = "nosize"

            [[disk]]
            name = "odd"
            size = "1M"
            sector_size = 1024
            """, "bad.toml", "/"))!;

        Assert.That(e.Message, Does.Contain("bad.toml has 10 problems"));
        Assert.That(e.Message, Does.Contain("sector_size must be 512 or 4096, not 1024"));
        Assert.That(e.Message, Does.Contain("'udp:1.2.3.4:5' must start with unix: or tcp:"));
        Assert.That(e.Message, Does.Contain("tcp:ADDRESS:PORT"));
        Assert.That(e.Message, Does.Contain("handshake_timeout: 'soon'"));
        Assert.That(e.Message, Does.Contain("max_connections: 0"));
        Assert.That(e.Message, Does.Contain("[[disk]] 'bad name!': name must be"));
        Assert.That(e.Message, Does.Contain("size '12Q'"));
        Assert.That(e.Message, Does.Contain("declared twice"));
        Assert.That(e.Message, Does.Contain("not a multiple of 4096"));
        Assert.That(e.Message, Does.Contain("[[disk]] 'nosize': size is missing"));
    }

    [Test]
    public void TomlSyntaxErrorsNameTheFileAndLine()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("[daemon]\nstate_dir = \n", "broken.toml", "/"))!;
        Assert.That(e.Message, Does.StartWith("broken.toml"));
        Assert.That(e.Message, Does.Contain("2"));
    }

    [Test]
    public void OverlongUnixSocketPathIsRefused()
    {
        string path = "/" + new string('s', 120);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load($"[daemon]\nlisten = [\"unix:{path}\"]\n", "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("107 bytes"));
    }

    [TestCase("512", 512L)]
    [TestCase("4K", 4096L)]
    [TestCase("10G", 10L << 30)]
    [TestCase("2t", 2L << 40)]
    public void Sizes(string text, long bytes)
    {
        Assert.That(Units.TryParseSize(text, out long parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(bytes));
    }

    [TestCase("")]
    [TestCase("G")]
    [TestCase("-1G")]
    [TestCase("99999999999P")]
    [TestCase("1.5G")]
    public void BadSizes(string text) => Assert.That(Units.TryParseSize(text, out _), Is.False);

    [TestCase("90s", 90)]
    [TestCase("5m", 300)]
    [TestCase("1h", 3600)]
    [TestCase("250ms", 0.25)]
    public void Durations(string text, double seconds)
    {
        Assert.That(Units.TryParseDuration(text, out var duration), Is.True);
        Assert.That(duration.TotalSeconds, Is.EqualTo(seconds));
    }
}
