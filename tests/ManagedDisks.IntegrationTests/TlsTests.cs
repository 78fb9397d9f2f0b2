using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace ManagedDisks.IntegrationTests;

/// <summary>NBD over TLS (STARTTLS) with certificates made by openssl, checked by libnbd, qemu and a raw TLS client.</summary>
[NonParallelizable]
public class TlsTests
{
    private string _pki = null!;
    private string _client = null!;
    private string _caOnly = null!;

    [OneTimeSetUp]
    public async Task MakeCertificates()
    {
        Tool.Require("openssl");
        string root = DaemonProcess.NewWorkDir();
        _pki = Path.Combine(root, "pki");
        _client = Path.Combine(root, "client");   // libnbd/qemu layout: ca-cert.pem, client-cert.pem, client-key.pem
        _caOnly = Path.Combine(root, "ca-only");
        foreach (string dir in new[] { _pki, _client, _caOnly }) Directory.CreateDirectory(dir);
        async Task Ssl(params string[] args) => await Tool.RunOkAsync("openssl", args);
        string P(string f) => Path.Combine(_pki, f);
        await Ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", P("ca-key.pem"), "-out", P("ca-cert.pem"), "-days", "2", "-subj", "/CN=ManagedDisks test CA");
        await File.WriteAllTextAsync(P("san.ext"), "subjectAltName=DNS:localhost\n");
        await Ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", P("server-key.pem"), "-out", P("server.csr"), "-subj", "/CN=localhost");
        await Ssl("x509", "-req", "-in", P("server.csr"), "-CA", P("ca-cert.pem"), "-CAkey", P("ca-key.pem"), "-CAcreateserial", "-out", P("server-cert.pem"), "-days", "2", "-extfile", P("san.ext"));
        await Ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", Path.Combine(_client, "client-key.pem"), "-out", P("client.csr"), "-subj", "/CN=client");
        await Ssl("x509", "-req", "-in", P("client.csr"), "-CA", P("ca-cert.pem"), "-CAkey", P("ca-key.pem"), "-CAcreateserial", "-out", Path.Combine(_client, "client-cert.pem"), "-days", "2");
        File.Copy(P("ca-cert.pem"), Path.Combine(_client, "ca-cert.pem"));
        File.Copy(P("ca-cert.pem"), Path.Combine(_caOnly, "ca-cert.pem"));
    }

    private Task<DaemonProcess> StartAsync(string mode, bool clientCa = false) => DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "16M"), daemonExtra:
        $"\n[tls]\nmode = \"{mode}\"\ncertificate = \"{_pki}/server-cert.pem\"\nkey = \"{_pki}/server-key.pem\"\n" + (clientCa ? $"client_ca = \"{_pki}/ca-cert.pem\"\n" : ""));

    private static string TlsUri(DaemonProcess d, string certificates) => $"nbds+unix:///disk0?socket={d.SocketPath}&tls-certificates={certificates}";

    [Test]
    public async Task RequireModeServesTlsClientsAndRefusesPlainOnes()
    {
        await using var d = await StartAsync("require");
        Assert.That((await Tool.RunOkAsync("nbdinfo", "--size", TlsUri(d, _caOnly))).StdOut.Trim(), Is.EqualTo((16L << 20).ToString()));
        Assert.That((await Tool.RunOkAsync("nbdinfo", "--is", "tls", TlsUri(d, _caOnly))).ExitCode, Is.Zero);

        var plain = await Tool.RunAsync("nbdinfo", ["--size", d.Uri()]);
        Assert.That(plain.ExitCode, Is.Not.Zero);
        Assert.That(plain.StdErr, Does.Contain("requires TLS"));

        // qemu's TLS client, with the client certificate it is given.
        var qemu = await Tool.RunAsync("qemu-io", ["--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={_client}", "--image-opts",
            $"driver=nbd,server.type=unix,server.path={d.SocketPath},export=disk0,tls-creds=tls0,tls-hostname=localhost",
            "-c", "write -P 0x6b 0 64k", "-c", "read -P 0x6b 0 64k"]);
        Assert.That(qemu.ExitCode, Is.Zero, qemu.ToString());
        Assert.That(qemu.StdOut + qemu.StdErr, Does.Not.Contain("failed"));
    }

    [Test]
    public async Task AllowModeServesBoth()
    {
        await using var d = await StartAsync("allow");
        await Tool.RunOkAsync("nbdinfo", "--size", d.Uri());
        await Tool.RunOkAsync("nbdinfo", "--size", TlsUri(d, _caOnly));
    }

    [Test]
    public async Task ClientCaRequiresAClientCertificate()
    {
        await using var d = await StartAsync("require", clientCa: true);
        await Tool.RunOkAsync("nbdinfo", "--size", TlsUri(d, _client));
        var without = await Tool.RunAsync("nbdinfo", ["--size", TlsUri(d, _caOnly)]);
        Assert.That(without.ExitCode, Is.Not.Zero, "a client without a certificate must be refused");
    }

    [Test]
    public async Task NegotiationBeforeStartTlsIsForgotten()
    {
        // CVE-2021-3716: STRUCTURED_REPLY sent in clear text must not survive STARTTLS.
        await using var d = await StartAsync("allow");
        var client = await RawNbdClient.NegotiatingAsync(d.SocketPath);
        await client.SendOptionAsync(8, []);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
        await client.SendOptionAsync(5, []);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));

        var ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(_pki, "ca-cert.pem"));
        using var tls = new SslStream(client.DetachStream(), leaveInnerStreamOpen: false, (_, certificate, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return certificate is not null && chain.Build(new X509Certificate2(certificate));
        });
        await tls.AuthenticateAsClientAsync("localhost");

        await tls.WriteAsync(RawNbdClient.EncodeOption(7, RawNbdClient.GoData("disk0")));
        while (true)
        {
            var header = new byte[20];
            await tls.ReadExactlyAsync(header);
            uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            await tls.ReadExactlyAsync(new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16))]);
            if (type == 1) break;
            Assert.That(type, Is.EqualTo(3u));
        }
        var read = new byte[28];
        BinaryPrimitives.WriteUInt32BigEndian(read, 0x25609513);
        BinaryPrimitives.WriteUInt64BigEndian(read.AsSpan(8), 77);
        BinaryPrimitives.WriteUInt32BigEndian(read.AsSpan(24), 512);
        await tls.WriteAsync(read);
        var reply = new byte[16];
        await tls.ReadExactlyAsync(reply);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(reply), Is.EqualTo(0x67446698u), "a simple reply: structured replies were not renegotiated inside TLS");
    }

    [Test]
    public async Task ClearTextInjectedAfterStartTlsEndsTheConnection()
    {
        await using var d = await StartAsync("require");
        await using var client = await RawNbdClient.NegotiatingAsync(d.SocketPath);
        // STARTTLS and, in the same write, a clear-text option an attacker slipped in behind it.
        await client.SendAsync([.. RawNbdClient.EncodeOption(5, []), .. RawNbdClient.EncodeOption(8, [])]);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
        Assert.That(await client.ServerClosedAsync(TimeSpan.FromSeconds(10)), Is.True);
        await d.WaitForLogAsync("clear-text bytes followed STARTTLS");
    }

    [Test]
    public async Task BadCertificateFilesStopTheDaemonWithTheLine()
    {
        string work = DaemonProcess.NewWorkDir();
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(Path.Combine(work, "state"), DaemonProcess.Disk("disk0", "8M"),
            daemonExtra: "\n[tls]\nmode = \"require\"\ncertificate = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"));
        var daemon = DaemonProcess.Launch(["serve", "--config", config], work, work);
        Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(2));
        Assert.That(daemon.Output, Does.Contain("[tls] cannot load certificate /nonexistent/cert.pem"));
    }
}
